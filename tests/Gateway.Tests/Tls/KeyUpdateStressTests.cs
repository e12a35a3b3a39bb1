using System.Diagnostics;
using System.Text;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Xunit.Abstractions;

namespace Gateway.Tests.Tls;

/// <summary>
/// TLS 1.3 KeyUpdates from the client in the middle of full-duplex traffic, with <c>Tls:ReleaseIdleBuffers</c> on (OpenSSL
/// then frees and retakes its record buffers between records, across the key changes): through the gateway to an echo
/// backend, every echoed byte must come back as sent. The client is <c>openssl s_client</c>, whose <c>k</c> and <c>K</c>
/// commands send a KeyUpdate (K also asks the gateway to update its own keys); .NET's client cannot send one.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class KeyUpdateStressTests(ITestOutputHelper output)
{
    private const int Batches = 12;
    private const int FramesPerBatch = 10;
    private const int FloodPerBatch = 4_000_000;
    private const int FloodFrame = 16 * 1024;

    // Frame sizes whose header bytes are none of s_client's command letters (a read of its stdin that starts with one
    // is taken as a command): the 7-bit, 16-bit and 64-bit length forms.
    private static readonly int[] Sizes = [1, 7, 125, 126, 144, 254, 1000, 8336, 16_272, 32_896, 39_578, 70_000];

    [OpensslFact]
    public async Task Every_echoed_byte_is_right_while_the_client_updates_its_keys_during_traffic()
    {
        await using var backend = new RawBackend();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:15"));
        config["Gateway"]!["Tls"]!["ReleaseIdleBuffers"] = true;
        await using var gateway = await GatewayServer.StartAsync(config);

        var start = new ProcessStartInfo("openssl", $"s_client -connect 127.0.0.1:{gateway.Wss.Port} -servername localhost -tls1_3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var openssl = Process.Start(start)!;
        try
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var keyUpdates = new SemaphoreSlim(0);
            var stderr = Task.Run(async () =>
            {
                while (await openssl.StandardError.ReadLineAsync(deadline.Token) is { } line)
                {
                    if (line.StartsWith("KEYUPDATE", StringComparison.Ordinal))
                    {
                        keyUpdates.Release();
                    }
                }
            });
            var reader = new EchoReader(openssl.StandardOutput.BaseStream);
            var reading = reader.RunAsync(deadline.Token);
            var stdin = openssl.StandardInput.BaseStream;

            var key = RawFrames.NewKey();
            await WriteAsync(stdin, Encoding.ASCII.GetBytes($"GET /raw/keyupdate HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"), deadline.Token);
            Assert.StartsWith("HTTP/1.1 101", await reader.Head.Task.WaitAsync(deadline.Token));

            var random = new Random(22);
            var sent = 0;
            var midFlood = 0;
            var floodSoFar = 0L;
            for (var batch = 0; batch < Batches; batch++)
            {
                // The client streams its frames while the last batch's flood may still stream toward it.
                for (var i = 0; i < FramesPerBatch; i++)
                {
                    var payload = new byte[Sizes[random.Next(Sizes.Length)]];
                    random.NextBytes(payload);
                    for (var b = 0; b < payload.Length; b++)
                    {
                        payload[b] |= 0x80; // never a command letter, and never a flood frame's zeros
                    }
                    reader.Expect(payload);
                    await WriteAsync(stdin, Frame(0x2, payload), deadline.Token);
                    sent++;
                }
                // s_client takes a read of its input that starts with k or K as the command: everything before it must
                // have been read, which the echoes and the flood's first frame show, then the command goes alone.
                await reader.WaitForEchoesAsync(sent, deadline.Token);
                var before = reader.FloodBytes;
                await WriteAsync(stdin, Frame(0x1, Encoding.ASCII.GetBytes($"flood:{FloodPerBatch}")), deadline.Token);
                floodSoFar += (FloodPerBatch + FloodFrame - 1) / FloodFrame * FloodFrame;
                await reader.WaitForFloodAsync(before + 1, deadline.Token);
                if (reader.FloodBytes < floodSoFar)
                {
                    midFlood++; // the gateway is still streaming to the client when the keys change
                }
                await WriteAsync(stdin, Encoding.ASCII.GetBytes(batch % 2 == 0 ? "k\n" : "K\n"), deadline.Token);
                Assert.True(await keyUpdates.WaitAsync(TimeSpan.FromSeconds(10), deadline.Token), $"s_client sent KeyUpdate {batch + 1}");
            }
            await reader.WaitForEchoesAsync(sent, deadline.Token);
            var flood = (long)Batches * ((FloodPerBatch + FloodFrame - 1) / FloodFrame) * FloodFrame;
            await reader.WaitForFloodAsync(flood, deadline.Token);
            output.WriteLine($"{sent} frames echoed intact and {reader.FloodBytes} flood bytes received across {Batches} KeyUpdates, {midFlood} of them mid-flood");
            Assert.True(midFlood > 0, "at least one KeyUpdate while the gateway was streaming to the client");
            Assert.Equal(0, reader.Unexpected);
            Assert.Null(reader.Failure);
        }
        finally
        {
            if (!openssl.HasExited)
            {
                openssl.Kill();
            }
        }
    }

    private static async Task WriteAsync(Stream stdin, byte[] bytes, CancellationToken cancellationToken)
    {
        await stdin.WriteAsync(bytes, cancellationToken);
        await stdin.FlushAsync(cancellationToken);
    }

    /// <summary>A client frame with a zero mask (RFC 6455 §5.3 asks for a mask, any value): the payload goes as it is.</summary>
    private static byte[] Frame(byte opcode, byte[] payload)
    {
        var frame = RawFrames.Encode(opcode, payload);
        var headerLength = frame.Length - payload.Length;
        frame.AsSpan(headerLength - 4, 4).Clear();
        payload.CopyTo(frame, headerLength);
        foreach (var b in frame.AsSpan(0, headerLength))
        {
            Assert.True(b is not ((byte)'k' or (byte)'K' or (byte)'Q' or (byte)'R'), $"a header byte {b:x2} would be a command");
        }
        return frame;
    }

    /// <summary>Reads s_client's output: its own lines until the 101, then the gateway's frames, checked as they come.</summary>
    private sealed class EchoReader(Stream stdout)
    {
        private readonly Queue<byte[]> _expected = new();
        private int _echoed;
        private long _floodBytes;

        public TaskCompletionSource<string> Head { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Unexpected { get; private set; }

        public string? Failure { get; private set; }

        public long FloodBytes => Interlocked.Read(ref _floodBytes);

        public void Expect(byte[] payload)
        {
            lock (_expected)
            {
                _expected.Enqueue(payload);
            }
        }

        public async Task WaitForEchoesAsync(int count, CancellationToken cancellationToken)
        {
            while (Volatile.Read(ref _echoed) < count)
            {
                Assert.Null(Failure);
                await Task.Delay(5, cancellationToken);
            }
        }

        public async Task WaitForFloodAsync(long bytes, CancellationToken cancellationToken)
        {
            while (FloodBytes < bytes)
            {
                Assert.Null(Failure);
                await Task.Delay(5, cancellationToken);
            }
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var buffer = new List<byte>();
            var chunk = new byte[64 * 1024];
            var headEnd = -1;
            var offset = 0;
            try
            {
                while (true)
                {
                    var read = await stdout.ReadAsync(chunk, cancellationToken);
                    if (read == 0)
                    {
                        Failure ??= "s_client's output ended";
                        Head.TrySetException(new EndOfStreamException(Failure));
                        return;
                    }
                    buffer.AddRange(chunk.AsSpan(0, read));
                    if (headEnd < 0)
                    {
                        var text = Encoding.Latin1.GetString(buffer.ToArray());
                        var status = text.IndexOf("HTTP/1.1 ", StringComparison.Ordinal);
                        var end = status < 0 ? -1 : text.IndexOf("\r\n\r\n", status, StringComparison.Ordinal);
                        if (end < 0)
                        {
                            continue;
                        }
                        headEnd = end + 4;
                        offset = headEnd;
                        Head.TrySetResult(text[status..end]);
                    }
                    offset = TakeFrames(buffer, offset);
                    if (offset > 1 << 20)
                    {
                        buffer.RemoveRange(0, offset);
                        offset = 0;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex)
            {
                Failure ??= ex.Message;
            }
        }

        /// <summary>Takes every whole frame from <paramref name="offset"/> on; returns where the first partial one starts.</summary>
        private int TakeFrames(List<byte> buffer, int offset)
        {
            while (buffer.Count - offset >= 2)
            {
                var opcode = buffer[offset] & 0x0F;
                long length = buffer[offset + 1] & 0x7F;
                var header = 2;
                if (length == 126)
                {
                    if (buffer.Count - offset < 4)
                    {
                        break;
                    }
                    length = (buffer[offset + 2] << 8) | buffer[offset + 3];
                    header = 4;
                }
                else if (length == 127)
                {
                    if (buffer.Count - offset < 10)
                    {
                        break;
                    }
                    length = 0;
                    for (var i = 0; i < 8; i++)
                    {
                        length = (length << 8) | buffer[offset + 2 + i];
                    }
                    header = 10;
                }
                if (buffer.Count - offset < header + length)
                {
                    break;
                }
                var payload = buffer.GetRange(offset + header, (int)length).ToArray();
                offset += header + (int)length;
                if (opcode == 0x2 && length == FloodFrame && Array.TrueForAll(payload, b => b == 0))
                {
                    Interlocked.Add(ref _floodBytes, length);
                    continue;
                }
                byte[]? expected;
                lock (_expected)
                {
                    _expected.TryDequeue(out expected);
                }
                if (opcode != 0x2 || expected is null || !expected.AsSpan().SequenceEqual(payload))
                {
                    Unexpected++;
                    Failure ??= $"frame {_echoed}: opcode {opcode}, {length} bytes, not the echo of {expected?.Length.ToString() ?? "nothing"} bytes sent";
                    continue;
                }
                Interlocked.Increment(ref _echoed);
            }
            return offset;
        }
    }
}
