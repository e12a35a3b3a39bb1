using System.Net.Security;
using System.Security.Authentication;
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
/// once), through <c>SSL_ctrl</c> from the libssl the runtime itself has loaded. Before the mode is set, the handle must
/// prove to be this connection's <c>SSL*</c>: OpenSSL's own view of it (<c>SSL_is_server</c>, <c>SSL_version</c>) has to
/// agree with the <see cref="SslStream"/>'s (server or client, negotiated protocol), so that a runtime update that moves
/// the field cannot have the gateway write into some other object. Anything unexpected (another platform, a runtime
/// whose fields differ, no such symbol, more than one libssl mapped, a handle that disagrees) leaves TLS as it was and
/// says so once; the connection is served as usual.
/// </remarks>
internal static class IdleTlsBuffers
{
    private const int SslCtrlMode = 33;                 // SSL_CTRL_MODE, openssl/ssl.h
    private const nint SslModeReleaseBuffers = 0x10;    // SSL_MODE_RELEASE_BUFFERS, openssl/ssl.h

    /// <summary><c>long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg)</c>; C's long is 64-bit on Linux x64 and arm64.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint SslCtrl(IntPtr ssl, int cmd, nint larg, IntPtr parg);

    /// <summary><c>int SSL_is_server(const SSL *ssl)</c> and <c>int SSL_version(const SSL *ssl)</c>.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int SslQuery(IntPtr ssl);

    private sealed record Binding(FieldInfo Context, SslCtrl Ctrl, SslQuery IsServer, SslQuery Version, string Library);

    private static readonly Lazy<(Binding? Binding, string Outcome)> Resolved = new(Resolve);
    private static int s_reported;
    private static int s_refusalReported;

    /// <summary>Adds the step to a TLS endpoint: call it after <c>UseHttps</c>, so that it runs once the handshake is done.</summary>
    public static void Use(ListenOptions endpoint, ILogger logger)
    {
        endpoint.Use(next => connection =>
        {
            if (connection.Features.Get<ISslStreamFeature>()?.SslStream is { } tls)
            {
                var released = TryRelease(tls, handleOf: tls, out var refused);
                if (refused is not null)
                {
                    if (Interlocked.Exchange(ref s_refusalReported, 1) == 0)
                    {
                        Log.IdleTlsBuffersKept(logger, refused);
                    }
                }
                else if (Interlocked.Exchange(ref s_reported, 1) == 0)
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
    public static bool TryRelease(SslStream stream) => TryRelease(stream, handleOf: stream, out _);

    /// <summary>
    /// Sets the mode on the <c>SSL*</c> found in <paramref name="handleOf"/> if it is <paramref name="stream"/>'s own
    /// (always, but for tests that hand it another connection's); <paramref name="refused"/> says why it was not.
    /// </summary>
    internal static bool TryRelease(SslStream stream, SslStream handleOf, out string? refused)
    {
        var mode = Control(stream, handleOf, SslModeReleaseBuffers, out refused);
        return mode is { } m && (m & SslModeReleaseBuffers) != 0;
    }

    /// <summary>The connection's current OpenSSL mode bits (for tests and diagnostics); null when they cannot be read.</summary>
    public static nint? ReadMode(SslStream stream) => Control(stream, stream, 0, out _);

    /// <summary>The reason it cannot be done here, or null when it can.</summary>
    public static string? Unavailable => Resolved.Value.Binding is null ? Resolved.Value.Outcome : null;

    private static nint? Control(SslStream stream, SslStream handleOf, nint addModeBits, out string? refused)
    {
        refused = null;
        if (Resolved.Value.Binding is not { } binding
            || binding.Context.GetValue(handleOf) is not SafeHandle { IsInvalid: false, IsClosed: false } ssl
            || ssl.GetType().Name != "SafeSslHandle")
        {
            return null;
        }
        var added = false;
        try
        {
            // The handle keeps the SSL* alive while OpenSSL is called, even if the connection is torn down meanwhile.
            ssl.DangerousAddRef(ref added);
            refused = Mismatch(binding, ssl.DangerousGetHandle(), stream);
            if (refused is not null)
            {
                return null;
            }
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

    /// <summary>Why the handle is not <paramref name="stream"/>'s <c>SSL*</c>, or null when OpenSSL's view of it agrees.</summary>
    private static string? Mismatch(Binding binding, IntPtr ssl, SslStream stream)
    {
        var isServer = binding.IsServer(ssl) == 1;
        var version = binding.Version(ssl);
        // TLS1_2_VERSION and TLS1_3_VERSION (openssl/prov_ssl.h): the protocol versions the gateway negotiates.
        var expected = stream.SslProtocol switch
        {
            SslProtocols.Tls13 => 0x0304,
            SslProtocols.Tls12 => 0x0303,
            _ => -1,
        };
        return isServer == stream.IsServer && version == expected
            ? null
            : $"the OpenSSL handle found is not this connection's (it says {(isServer ? "server" : "client")}, version 0x{version:x4}; "
                + $"the connection is a {(stream.IsServer ? "server" : "client")} on {stream.SslProtocol}): the runtime's internals changed";
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
        if (!NativeLibrary.TryLoad(library, out var handle) || !NativeLibrary.TryGetExport(handle, "SSL_ctrl", out var ctrl)
            || !NativeLibrary.TryGetExport(handle, "SSL_is_server", out var isServer)
            || !NativeLibrary.TryGetExport(handle, "SSL_version", out var version))
        {
            return (null, $"{library} lacks SSL_ctrl, SSL_is_server or SSL_version");
        }
        return (new Binding(context, Marshal.GetDelegateForFunctionPointer<SslCtrl>(ctrl),
            Marshal.GetDelegateForFunctionPointer<SslQuery>(isServer), Marshal.GetDelegateForFunctionPointer<SslQuery>(version), library), library);
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
