using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Runtime.InteropServices;
using SharpTune.Engine;

namespace SharpTune.IO.Safetensors;

/// <summary>
/// A read-only, memory-mapped safetensors file. <see cref="Open"/> validates the whole header (see
/// <see cref="SafetensorsHeader"/>) before anything is exposed, so every tensor it lists lies inside the file and
/// has the size its dtype and shape imply. Tensor data is never copied unless a Read* method is called.
/// Spans and pointers handed out point into the mapping: they are valid only until <see cref="Dispose"/>.
/// Reads may run concurrently; Dispose must not race with them.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, TensorInfo> _byName;
    private byte* _data;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart,
        Dictionary<string, string> metadata, List<TensorInfo> tensors)
    {
        Path = path;
        _map = map;
        _view = view;
        Metadata = metadata.AsReadOnly();
        Tensors = tensors.AsReadOnly();
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        byte* basePtr = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
        _data = basePtr + view.PointerOffset + dataStart;
    }

    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>All tensors in file order (ascending data offset).</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    public static SafetensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; big-endian hosts are not supported");

        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        try
        {
            long fileLength = stream.Length;
            Span<byte> first8 = stackalloc byte[8];
            stream.ReadAtLeast(first8, (int)Math.Min(8, fileLength), throwOnEndOfStream: true);
            long headerLength = SafetensorsHeader.ReadHeaderLength(path, first8, fileLength);

            byte[] header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataStart = 8 + headerLength;
            var (metadata, tensors) = SafetensorsHeader.Parse(path, header, fileLength - dataStart);

            var map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0,
                MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                return new SafetensorsFile(path, map, view, dataStart, metadata, tensors);
            }
            catch
            {
                map.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo Get(string name) =>
        _byName.TryGetValue(name, out TensorInfo? info)
            ? info
            : throw new KeyNotFoundException($"{Path}: no tensor {SafetensorsFormatException.Quote(name)}");

    /// <summary>Address of the tensor's first byte in the mapping; valid while this file is open.</summary>
    public void* Pointer(string name)
    {
        TensorInfo info = Get(name);
        return DataStart() + info.Begin;
    }

    /// <summary>The tensor's raw little-endian bytes. Tensors of 2 GiB or more do not fit a span: use <see cref="Pointer"/>.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        TensorInfo info = Get(name);
        if (info.ByteSize > int.MaxValue)
            throw new InvalidOperationException($"{Path}: tensor {SafetensorsFormatException.Quote(name)} is {info.ByteSize} bytes, too large for a span; use Pointer");
        return new ReadOnlySpan<byte>(DataStart() + info.Begin, (int)info.ByteSize);
    }

    /// <summary>The tensor as float32: F16 and BF16 are widened exactly, integers converted (I32/I64 values beyond
    /// 2^24 round to the nearest float).</summary>
    public float[] ReadFloat32(string name)
    {
        TensorInfo info = Get(name);
        float[] result = new float[CheckedArrayLength(info)];
        ReadFloat32(name, result);
        return result;
    }

    /// <summary>Like <see cref="ReadFloat32(string)"/> into a caller's buffer of exactly ElementCount floats.</summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        TensorInfo info = Get(name);
        CheckDestination(info, destination.Length);
        byte* src = DataStart() + info.Begin;
        switch (info.DType)
        {
            case DType.F32:
                Chunks<float, float>(src, destination, static (s, d) => s.CopyTo(d));
                break;
            case DType.BF16:
                Chunks<ushort, float>(src, destination, static (s, d) => BFloat16.ToSingle(s, d));
                break;
            case DType.F16:
                Chunks<Half, float>(src, destination, static (s, d) => Float16.ToSingle(s, d));
                break;
            case DType.I8:
                Chunks<sbyte, float>(src, destination, Convert);
                break;
            case DType.U8:
                Chunks<byte, float>(src, destination, Convert);
                break;
            case DType.I32:
                Chunks<int, float>(src, destination, Convert);
                break;
            case DType.I64:
                Chunks<long, float>(src, destination, Convert);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(name), info.DType, "unhandled dtype");
        }
    }

    /// <summary>An I32 tensor (I8 and U8 are widened).</summary>
    public int[] ReadInt32(string name)
    {
        TensorInfo info = Get(name);
        int[] result = new int[CheckedArrayLength(info)];
        byte* src = DataStart() + info.Begin;
        switch (info.DType)
        {
            case DType.I32:
                Chunks<int, int>(src, result, static (s, d) => s.CopyTo(d));
                break;
            case DType.I8:
                Chunks<sbyte, int>(src, result, Convert);
                break;
            case DType.U8:
                Chunks<byte, int>(src, result, Convert);
                break;
            default:
                throw NotConvertible(info, "int32");
        }
        return result;
    }

    /// <summary>An I64 tensor (I32, I8 and U8 are widened).</summary>
    public long[] ReadInt64(string name)
    {
        TensorInfo info = Get(name);
        long[] result = new long[CheckedArrayLength(info)];
        byte* src = DataStart() + info.Begin;
        switch (info.DType)
        {
            case DType.I64:
                Chunks<long, long>(src, result, static (s, d) => s.CopyTo(d));
                break;
            case DType.I32:
                Chunks<int, long>(src, result, Convert);
                break;
            case DType.I8:
                Chunks<sbyte, long>(src, result, Convert);
                break;
            case DType.U8:
                Chunks<byte, long>(src, result, Convert);
                break;
            default:
                throw NotConvertible(info, "int64");
        }
        return result;
    }

    public void Dispose()
    {
        if (_data == null) return;
        _data = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";

    private byte* DataStart()
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        return _data;
    }

    private delegate void ConvertChunk<TSrc, TDst>(ReadOnlySpan<TSrc> source, Span<TDst> destination);

    /// <summary>Converts element by element in chunks, because a source tensor can exceed the 2^31-element span
    /// limit in bytes even when its element count fits an array (an 8 GiB F32 tensor, say).</summary>
    private static void Chunks<TSrc, TDst>(byte* source, Span<TDst> destination, ConvertChunk<TSrc, TDst> convert)
        where TSrc : unmanaged
    {
        const int chunk = 1 << 24;
        for (int start = 0; start < destination.Length; start += chunk)
        {
            int n = Math.Min(chunk, destination.Length - start);
            var src = new ReadOnlySpan<TSrc>(source + (long)start * sizeof(TSrc), n);
            convert(src, destination.Slice(start, n));
        }
    }

    /// <summary>Element by element with the cast's own semantics (an integer becomes the nearest float).</summary>
    private static void Convert<TSrc, TDst>(ReadOnlySpan<TSrc> source, Span<TDst> destination)
        where TSrc : INumberBase<TSrc>
        where TDst : INumberBase<TDst>
    {
        for (int i = 0; i < source.Length; i++) destination[i] = TDst.CreateTruncating(source[i]);
    }

    private int CheckedArrayLength(TensorInfo info)
    {
        long n = info.ElementCount;
        if (n > Array.MaxLength)
            throw new InvalidOperationException($"{Path}: tensor {SafetensorsFormatException.Quote(info.Name)} has {n} elements, more than an array holds; use Pointer");
        return (int)n;
    }

    private void CheckDestination(TensorInfo info, int length)
    {
        if (length != info.ElementCount)
            throw new ArgumentException($"{Path}: tensor {SafetensorsFormatException.Quote(info.Name)} has {info.ElementCount} elements, destination holds {length}");
    }

    private InvalidOperationException NotConvertible(TensorInfo info, string target) =>
        new($"{Path}: tensor {SafetensorsFormatException.Quote(info.Name)} is {info.DType}, which does not convert losslessly to {target}");
}
