using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Handshake;

/// <summary>Keeps every log line written to it (category, event id, message), for tests that count lines.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider, ILogger
{
    public ConcurrentQueue<(string Category, EventId Id, string Message)> Lines { get; } = new();

    /// <summary>The same lines with their level and exception.</summary>
    public ConcurrentQueue<(string Category, LogLevel Level, EventId Id, string Message, Exception? Exception)> Records { get; } = new();

    private string _category = string.Empty;

    public ILogger CreateLogger(string categoryName) => new CapturingLoggerProvider.Scoped(this, categoryName);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Add(_category, logLevel, eventId, formatter(state, exception), exception);

    private void Add(string category, LogLevel level, EventId id, string message, Exception? exception)
    {
        Lines.Enqueue((category, id, message));
        Records.Enqueue((category, level, id, message, exception));
    }

    public void Dispose()
    {
    }

    private sealed class Scoped(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Add(category, logLevel, eventId, formatter(state, exception), exception);
    }
}
