namespace ChatBackend;

/// <summary>Process entry point; all wiring lives in <see cref="ChatBackendApp"/> so tests can host the same app.</summary>
public static class Program
{
    public static void Main(string[] args) => ChatBackendApp.Build(args).Run();
}
