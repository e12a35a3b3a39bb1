using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Configuration;

/// <summary>The <c>Gateway</c> section of the configuration file: everything that is not YARP's.</summary>
internal sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>YARP's own section beside it, routes and clusters.</summary>
    public const string ReverseProxySectionName = "ReverseProxy";

    /// <summary>Public listeners by name. When the section is absent: <c>ws</c> on *:80 and <c>wss</c> on *:443.</summary>
    public Dictionary<string, ListenerOptions> Listeners { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public TlsOptions Tls { get; set; } = new();

    public AdminOptions Admin { get; set; } = new();

    public DataProtectionOptions DataProtection { get; set; } = new();

    /// <summary>Named WebSocket policies that routes refer to from their metadata.</summary>
    public Dictionary<string, WebSocketPolicyOptions> WebSocketPolicies { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Networks (CIDR, or single addresses) whose X-Forwarded-For is believed: the client address the per-client
    /// limits count is then the one the forwarder names. Empty (the default): the connection's own remote address.
    /// </summary>
    public List<string> TrustedForwarders { get; set; } = new();

    /// <summary>
    /// The listen backlog of every listener: connections the kernel queues while the gateway accepts. Kestrel's 512
    /// adds a second of latency to a burst of new connections; the kernel caps it at net.core.somaxconn.
    /// </summary>
    public int ListenBacklog { get; set; } = 4096;

    /// <summary>
    /// Run socket completions and Kestrel's pipe continuations on the I/O threads instead of handing each to the thread
    /// pool: a relayed message then crosses no thread, where each hand-off is a wake-up and a context switch
    /// (bench/RESULTS.md: a third less CPU per message). Safe because nothing on the relay path blocks; logging
    /// drops rather than waits when its queue is full.
    /// </summary>
    public bool InlineCompletions { get; set; } = true;

    /// <summary>
    /// Take HTTP/1.1 connections whose first request is a plain WebSocket upgrade off Kestrel's HTTP/1.1 machinery: the
    /// request runs the same pipeline over a lean context and the tunnel then holds no per-request server objects (about
    /// 5 KB less per idle tunnel, bench/RESULTS.md). Any head the lean path is not sure of goes to Kestrel untouched.
    /// </summary>
    public bool LeanUpgrades { get; set; } = true;

    /// <summary>
    /// The public listeners run on the gateway's own socket transport, and a plain ws tunnel on the lean HTTP/1.1 path
    /// takes the client's socket out of it after the 101 (a wss one goes direct under Kestrel's TLS): no transport pipes
    /// and loops per idle tunnel, no hand-off per message. On by default since two quiet A/B runs agreed (bench/RESULTS.md,
    /// sessions 9 and 10: ws echo 0.82-0.89x to 0.94-0.95x nginx, seeds CPU 1.45x to 1.26-1.29x nginx).
    /// </summary>
    public bool SocketTakeover { get; set; } = true;

    /// <summary>How long shutdown waits for open connections before it cuts them.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>WebSocket sessions the gateway runs through itself at startup, before it reports ready.</summary>
    public WarmupOptions Warmup { get; set; } = new();

    /// <summary>
    /// Bind the public listeners with SO_REUSEPORT (Linux), so several gateway processes share their ports and the
    /// kernel spreads new connections over them. The admin listener never shares: each process needs its own port.
    /// </summary>
    public bool ReusePort { get; set; }

    /// <summary>The gateway's own connections to backends.</summary>
    public UpstreamOptions Upstream { get; set; } = new();

    /// <summary>What shutdown does with the listeners and the open tunnels, so that a load balancer can follow.</summary>
    public DrainOptions Drain { get; set; } = new();

    /// <summary>OTLP export of the metrics and of one span per WebSocket handshake; off by default.</summary>
    public TelemetryOptions Telemetry { get; set; } = new();

    /// <summary>The access log: one line per tunnel and per refused handshake, its format and fields.</summary>
    public AccessLogOptions AccessLog { get; set; } = new();
}

/// <summary>
/// <c>Gateway:Drain</c>: on SIGTERM <c>/readyz</c> turns 503 at once; the listeners keep accepting for
/// <see cref="Delay"/> (the balancer's health check notices meanwhile); then they stop, and the open tunnels get a
/// Close 1001 spread evenly over <see cref="Period"/>, so that their clients do not all reconnect in one instant.
/// </summary>
internal sealed class DrainOptions
{
    public TimeSpan Delay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan Period { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// <c>Gateway:Warmup</c>. A .NET process compiles its hot code while it serves the first few thousand connections
/// (bench/RESULTS.md: a cold gateway spent a quarter of its CPU in the JIT during a 9,000-connection burst). A gateway
/// that joins a pool is exactly the one a reconnect storm hits, so it does that work before <c>/readyz</c> says ready.
/// </summary>
internal sealed class WarmupOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>The longest the warm-up may delay readiness; it usually ends earlier, once the JIT has gone quiet.</summary>
    public TimeSpan MaxDuration { get; set; } = TimeSpan.FromSeconds(15);
}

internal sealed class ListenerOptions
{
    /// <summary><c>*</c> (every interface, IPv4 and IPv6), <c>localhost</c>, or an IP address.</summary>
    public string Address { get; set; } = "*";

    public int? Port { get; set; }

    /// <summary>Terminate TLS on this listener (wss/https).</summary>
    public bool Tls { get; set; }

    /// <summary>Kestrel's protocols. Default: Http1AndHttp2 with TLS (ALPN), Http1 without.</summary>
    public HttpProtocols? Protocols { get; set; }

    /// <summary>
    /// Every connection opens with a PROXY protocol header (v1 or v2) from an L4 balancer, whose client address replaces
    /// the balancer's. Connections without one are closed: only balancers may reach such a listener.
    /// </summary>
    public bool ProxyProtocol { get; set; }

    /// <summary>
    /// With <see cref="ProxyProtocol"/>: the networks (CIDR, or single addresses) of the balancers whose header is
    /// believed, as nginx's <c>set_real_ip_from</c>. A connection from anywhere else is closed before it is read, so a
    /// client that reaches the listener directly cannot name another address. Empty (the default): loopback only.
    /// </summary>
    public List<string> ProxyProtocolTrustedNetworks { get; set; } = new();
}

internal sealed class TlsOptions
{
    /// <summary>Server certificates; the one chosen for a connection is picked by SNI host name.</summary>
    public List<CertificateOptions> Certificates { get; set; } = new();

    /// <summary>How long a client may take to complete the TLS handshake.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the certificate and key files are checked for a renewal, besides file-system notifications (which miss
    /// some: links into other directories, network file systems). Zero: notifications and SIGHUP only.
    /// </summary>
    public TimeSpan CertificateCheckInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Let OpenSSL free a connection's read and write record buffers (about 34 KB) whenever they are empty, as nginx
    /// does: an idle wss tunnel then holds none. Costs an allocation per TLS record on busy connections.
    /// </summary>
    public bool ReleaseIdleBuffers { get; set; } = true;
}

internal sealed class CertificateOptions
{
    /// <summary>SNI host names this certificate serves (<c>*.example.com</c> matches one label). Empty: the default certificate.</summary>
    public List<string> Hosts { get; set; } = new();

    /// <summary>A PEM certificate (with <see cref="KeyPath"/>) or a PFX/PKCS#12 file.</summary>
    public string? Path { get; set; }

    /// <summary>The PEM private key. Absent: <see cref="Path"/> is a PFX file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>The environment variable holding the PFX (or encrypted PEM key) password. Passwords never live in the file.</summary>
    public string? PasswordEnvironmentVariable { get; set; }
}

internal sealed class AdminOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>Loopback by default: health and metrics are for the operator, not the internet.</summary>
    public string Address { get; set; } = "127.0.0.1";

    public int Port { get; set; } = 9901;

    /// <summary>
    /// The name of an environment variable holding a bearer token: when set, the admin API (<c>/connections</c>,
    /// <c>/clusters/...</c>) answers only requests with <c>Authorization: Bearer TOKEN</c>. Health, readiness and metrics
    /// stay open for probes and scrapers. The token itself never goes in the file.
    /// </summary>
    public string? TokenEnvironmentVariable { get; set; }

    /// <summary>
    /// Without a token, let the admin API change live traffic (close a tunnel, start or end a drain) anyway. Off: without
    /// a token the API only reads. Whatever this says, it refuses requests from browsers and DNS-name Hosts.
    /// </summary>
    public bool AllowUnauthenticatedChanges { get; set; }
}

internal sealed class DataProtectionOptions
{
    /// <summary>
    /// Where the key ring that encrypts affinity cookies is kept. Replicas that must honour each other's
    /// cookies share it. Absent: ASP.NET Core's default ($HOME/.aspnet/DataProtection-Keys).
    /// </summary>
    public string? KeyDirectory { get; set; }

    public string ApplicationName { get; set; } = "Gateway";
}
