using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Handshake;

/// <summary>Keeps every log line written to it (category, event id, message), for tests that count lines.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider, ILogger
{
    public ConcurrentQueue<(string Category, EventId Id, string Message)> Lines { get; } = new();

    private string _category = string.Empty;

    public ILogger CreateLogger(string categoryName) => new CapturingLoggerProvider.Scoped(this, categoryName);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Lines.Enqueue((_category, eventId, formatter(state, exception)));

    public void Dispose()
    {
    }

    private sealed class Scoped(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue((category, eventId, formatter(state, exception)));
    }
}
