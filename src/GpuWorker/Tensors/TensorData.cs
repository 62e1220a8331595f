using System.Buffers;
using System.Runtime.InteropServices;

namespace Lepton.GpuWorker.Tensors;

/// <summary>
/// One tensor's elements in a pooled buffer: little-endian, row-major bytes for numeric types, or,
/// for <see cref="DataType.Bytes"/>, the elements' bytes back to back with their start offsets.
/// Owned by one request (or one batch) and returned to the pool on <see cref="Dispose"/>.
/// </summary>
public sealed class TensorData : IDisposable
{
    private byte[] _buffer;
    private int[]? _offsets;

    private TensorData(DataType type, long[] shape, int count, byte[] buffer, int byteLength, int[]? offsets)
    {
        Type = type;
        Shape = shape;
        Count = count;
        _buffer = buffer;
        ByteLength = byteLength;
        _offsets = offsets;
    }

    public DataType Type { get; }

    public long[] Shape { get; }

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public int Count { get; }

    /// <summary>Bytes of element data (for BYTES: the elements' bytes without length prefixes).</summary>
    public int ByteLength { get; private set; }

    /// <summary>Rows along the first dimension (1 for a scalar).</summary>
    public int Rows => Shape.Length == 0 ? 1 : (int)Shape[0];

    /// <summary>The element bytes (numeric types).</summary>
    public Span<byte> Span => _buffer.AsSpan(0, ByteLength);

    /// <summary>The backing array (pooled; may be longer than <see cref="ByteLength"/>).</summary>
    public byte[] Buffer => _buffer;

    /// <summary>Start offsets of the BYTES elements, <see cref="Count"/> + 1 entries.</summary>
    public ReadOnlySpan<int> Offsets => _offsets is null ? [] : _offsets.AsSpan(0, Count + 1);

    public Span<T> As<T>()
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(Span);

    /// <summary>Element <paramref name="index"/> of a BYTES tensor.</summary>
    public ReadOnlySpan<byte> Element(int index) => _buffer.AsSpan(_offsets![index], _offsets[index + 1] - _offsets[index]);

    /// <summary>A numeric tensor of <paramref name="count"/> elements, zeroed only when <paramref name="clear"/>.</summary>
    public static TensorData Numeric(DataType type, long[] shape, int count, bool clear = false)
    {
        var bytes = checked(count * DataTypes.ElementSize(type));
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(bytes, 1));
        if (clear)
        {
            buffer.AsSpan(0, bytes).Clear();
        }
        return new TensorData(type, shape, count, buffer, bytes, null);
    }

    /// <summary>A BYTES tensor with room for <paramref name="capacity"/> bytes; fill it with <see cref="SetElement"/>.</summary>
    public static TensorData Strings(long[] shape, int count, int capacity)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(capacity, 1));
        var offsets = ArrayPool<int>.Shared.Rent(count + 1);
        offsets[0] = 0;
        return new TensorData(DataType.Bytes, shape, count, buffer, 0, offsets);
    }

    /// <summary>Appends element <paramref name="index"/> of a BYTES tensor (elements in order), growing the buffer if needed.</summary>
    public void SetElement(int index, ReadOnlySpan<byte> value)
    {
        var start = _offsets![index];
        EnsureCapacity(start + value.Length);
        value.CopyTo(_buffer.AsSpan(start));
        _offsets[index + 1] = start + value.Length;
        ByteLength = start + value.Length;
    }

    /// <summary>Room for <paramref name="length"/> more bytes at element <paramref name="index"/>; commit with <see cref="CommitElement"/>.</summary>
    public Span<byte> ReserveElement(int index, int length)
    {
        var start = _offsets![index];
        EnsureCapacity(start + length);
        return _buffer.AsSpan(start, length);
    }

    public void CommitElement(int index, int length)
    {
        _offsets![index + 1] = _offsets[index] + length;
        ByteLength = _offsets[index + 1];
    }

    private void EnsureCapacity(int needed)
    {
        if (needed <= _buffer.Length)
        {
            return;
        }
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _buffer.Length * 2));
        _buffer.AsSpan(0, ByteLength).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    /// <summary>The number of bytes this tensor takes on the wire (BYTES: with 4-byte length prefixes).</summary>
    public int WireLength => Type == DataType.Bytes ? checked(ByteLength + (4 * Count)) : ByteLength;

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var offsets = Interlocked.Exchange(ref _offsets, null);
        if (offsets is not null)
        {
            ArrayPool<int>.Shared.Return(offsets);
        }
    }
}
