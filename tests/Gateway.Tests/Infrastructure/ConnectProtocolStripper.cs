using System.Buffers.Binary;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// The write side of a server's HTTP/2 connection with SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8, RFC 8441 section 3)
/// taken out of its first SETTINGS frame, the server preface (RFC 9113 section 3.4): the server then speaks HTTP/2
/// but, to its clients, offers no WebSockets over it. Kestrel always offers them and has no option to stop.
/// </summary>
public sealed class ConnectProtocolStripper(Stream inner) : Stream
{
    private const int FrameHeaderLength = 9;
    private const int SettingLength = 6;
    private const byte SettingsFrame = 0x4;
    private const ushort EnableConnectProtocol = 0x8;

    private byte[] _preface = [];
    private bool _passing;

    /// <summary>Set once the preface went out without the setting (false if it never had it).</summary>
    public bool Stripped { get; private set; }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_passing)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            return;
        }
        // The preface may come in pieces: held back until the whole frame is here.
        _preface = [.. _preface, .. buffer.Span];
        if (_preface.Length < FrameHeaderLength)
        {
            return;
        }
        var length = (_preface[0] << 16) | (_preface[1] << 8) | _preface[2];
        if (_preface.Length < FrameHeaderLength + length)
        {
            return;
        }
        if (_preface[3] != SettingsFrame)
        {
            throw new InvalidDataException($"the server's first frame is of type {_preface[3]}, not SETTINGS");
        }
        var kept = new List<byte>(_preface.Length);
        kept.AddRange(_preface.AsSpan(0, FrameHeaderLength));
        for (var offset = FrameHeaderLength; offset < FrameHeaderLength + length; offset += SettingLength)
        {
            var setting = _preface.AsSpan(offset, SettingLength);
            if (BinaryPrimitives.ReadUInt16BigEndian(setting) == EnableConnectProtocol)
            {
                Stripped = true;
                continue;
            }
            kept.AddRange(setting);
        }
        var newLength = kept.Count - FrameHeaderLength;
        var frame = kept.ToArray();
        frame[0] = (byte)(newLength >> 16);
        frame[1] = (byte)(newLength >> 8);
        frame[2] = (byte)newLength;
        _passing = true;
        await inner.WriteAsync(frame, cancellationToken);
        await inner.WriteAsync(_preface.AsMemory(FrameHeaderLength + length), cancellationToken);
        _preface = [];
    }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync() => inner.DisposeAsync();

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
