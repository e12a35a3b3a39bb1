using System.Net.Security;
using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Tls;

/// <summary>
/// Lets OpenSSL free a TLS connection's record buffers while the connection is idle.
/// </summary>
/// <remarks>
/// OpenSSL gives every connection a read and a write record buffer (about 17 KB each) on first use and keeps them for the
/// connection's life; with <c>SSL_MODE_RELEASE_BUFFERS</c> it frees each one as soon as it is empty and takes a new one
/// for the next record ("can save around 34k per idle SSL connection", SSL_CTX_set_mode(3)). nginx sets it. An edge that
/// holds many mostly idle WebSockets pays those 34 KB per tunnel for nothing, and the cost is one allocation per record
/// on busy connections (curl dropped the mode for that reason; a WebSocket relay's records are few and small by
/// comparison). .NET's <see cref="SslStream"/> has no API for it, so it is set here by hand: after the handshake, on the
/// <c>SSL*</c> the stream holds (its <c>_securityContext</c> field, a <c>SafeSslHandle</c> on Linux, found by reflection
/// once), through <c>SSL_ctrl</c> from the libssl the runtime itself has loaded. Anything unexpected (another platform, a
/// runtime whose fields differ, no such symbol, more than one libssl mapped) leaves TLS as it was and says so once.
/// </remarks>
internal static class IdleTlsBuffers
{
    private const int SslCtrlMode = 33;                 // SSL_CTRL_MODE, openssl/ssl.h
    private const nint SslModeReleaseBuffers = 0x10;    // SSL_MODE_RELEASE_BUFFERS, openssl/ssl.h

    /// <summary><c>long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg)</c>; C's long is 64-bit on Linux x64 and arm64.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint SslCtrl(IntPtr ssl, int cmd, nint larg, IntPtr parg);

    private sealed record Binding(FieldInfo Context, SslCtrl Ctrl, string Library);

    private static readonly Lazy<(Binding? Binding, string Outcome)> Resolved = new(Resolve);
    private static int s_reported;

    /// <summary>Adds the step to a TLS endpoint: call it after <c>UseHttps</c>, so that it runs once the handshake is done.</summary>
    public static void Use(ListenOptions endpoint, ILogger logger)
    {
        endpoint.Use(next => connection =>
        {
            if (connection.Features.Get<ISslStreamFeature>()?.SslStream is { } tls)
            {
                var released = TryRelease(tls);
                if (Interlocked.Exchange(ref s_reported, 1) == 0)
                {
                    if (released)
                    {
                        Log.IdleTlsBuffersReleased(logger, Resolved.Value.Outcome);
                    }
                    else
                    {
                        Log.IdleTlsBuffersKept(logger, Resolved.Value.Outcome);
                    }
                }
            }
            return next(connection);
        });
    }

    /// <summary>Sets <c>SSL_MODE_RELEASE_BUFFERS</c> on the stream's connection; false when it cannot be done.</summary>
    public static bool TryRelease(SslStream stream)
    {
        var mode = Control(stream, SslModeReleaseBuffers);
        return mode is { } m && (m & SslModeReleaseBuffers) != 0;
    }

    /// <summary>The connection's current OpenSSL mode bits (for tests and diagnostics); null when they cannot be read.</summary>
    public static nint? ReadMode(SslStream stream) => Control(stream, 0);

    /// <summary>The reason it cannot be done here, or null when it can.</summary>
    public static string? Unavailable => Resolved.Value.Binding is null ? Resolved.Value.Outcome : null;

    private static nint? Control(SslStream stream, nint addModeBits)
    {
        if (Resolved.Value.Binding is not { } binding
            || binding.Context.GetValue(stream) is not SafeHandle { IsInvalid: false, IsClosed: false } ssl
            || ssl.GetType().Name != "SafeSslHandle")
        {
            return null;
        }
        var added = false;
        try
        {
            // The handle keeps the SSL* alive while OpenSSL is called, even if the connection is torn down meanwhile.
            ssl.DangerousAddRef(ref added);
            // SSL_CTRL_MODE ORs larg into the mode and returns the result (SSL_set_mode and SSL_get_mode are this call).
            return binding.Ctrl(ssl.DangerousGetHandle(), SslCtrlMode, addModeBits, IntPtr.Zero);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        finally
        {
            if (added)
            {
                ssl.DangerousRelease();
            }
        }
    }

    private static (Binding?, string) Resolve()
    {
        if (!OperatingSystem.IsLinux())
        {
            return (null, "SslStream does not use OpenSSL on this platform");
        }
        var context = typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic);
        if (context is null || context.FieldType.Name != "SafeDeleteSslContext")
        {
            return (null, "this runtime's SslStream does not hold its OpenSSL connection where expected");
        }
        var libraries = MappedLibSsl();
        if (libraries.Count != 1)
        {
            return (null, libraries.Count == 0 ? "no libssl is loaded" : $"several libssl are loaded ({string.Join(", ", libraries)})");
        }
        var library = libraries[0];
        if (!NativeLibrary.TryLoad(library, out var handle) || !NativeLibrary.TryGetExport(handle, "SSL_ctrl", out var ctrl))
        {
            return (null, $"{library} has no SSL_ctrl");
        }
        return (new Binding(context, Marshal.GetDelegateForFunctionPointer<SslCtrl>(ctrl), library), library);
    }

    /// <summary>
    /// The libssl files this process has mapped: the one the runtime's OpenSSL shim opened (it picks among versions, and
    /// <c>DOTNET_OPENSSL_VERSION_OVERRIDE</c> can choose), so that the SSL* is handed to the library that made it.
    /// </summary>
    private static List<string> MappedLibSsl()
    {
        var found = new List<string>();
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var slash = line.IndexOf('/');
                if (slash < 0)
                {
                    continue;
                }
                var path = line[slash..];
                if (Path.GetFileName(path).StartsWith("libssl.so", StringComparison.Ordinal) && !found.Contains(path))
                {
                    found.Add(path);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return found;
    }
}
