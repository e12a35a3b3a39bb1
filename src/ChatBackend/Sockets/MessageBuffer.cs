using System.Buffers;

namespace ChatBackend.Sockets;

/// <summary>
/// A growable buffer backed by <see cref="ArrayPool{T}"/>: small messages cost a few KiB, large ones grow
/// on demand up to the caller's limit, and nothing close to the limit is allocated up front.
/// </summary>
internal sealed class MessageBuffer : IDisposable
{
    private const int InitialSize = 4 * 1024;

    /// <summary>Buffers above this size are returned to the pool between messages so an idle socket stays cheap.</summary>
    private const int RetainLimit = 1024 * 1024;

    private byte[] _array;
    private bool _disposed;

    public MessageBuffer() => _array = ArrayPool<byte>.Shared.Rent(InitialSize);

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, Length);

    /// <summary>Returns free space after the written bytes, growing so that at least one byte is free, but never past <paramref name="limit"/> in total.</summary>
    public Memory<byte> GetFreeMemory(int limit)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length >= limit)
        {
            throw new InvalidOperationException("The buffer already holds the maximum number of bytes.");
        }

        if (Length == _array.Length)
        {
            // Doubling keeps the number of copies logarithmic in the message size.
            var newSize = (int)Math.Min((long)_array.Length * 2, limit);
            var bigger = ArrayPool<byte>.Shared.Rent(newSize);
            _array.AsSpan(0, Length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_array);
            _array = bigger;
        }

        return _array.AsMemory(Length, Math.Min(_array.Length, limit) - Length);
    }

    public void Advance(int count)
    {
        if (count < 0 || Length + count > _array.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }

        Length += count;
    }

    /// <summary>Forgets the current message; drops an oversized array so one big message does not pin memory forever.</summary>
    public void Reset()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Length = 0;
        if (_array.Length > RetainLimit)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = ArrayPool<byte>.Shared.Rent(InitialSize);
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ArrayPool<byte>.Shared.Return(_array);
        _array = [];
        Length = 0;
    }
}
