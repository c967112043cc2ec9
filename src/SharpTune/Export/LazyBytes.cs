using System.Buffers;
using System.Runtime.InteropServices;

namespace SharpTune.Export;

/// <summary>
/// Bytes of a known length that are produced only when read. The safetensors writer takes every tensor of a model
/// up front but reads each one's data once, while writing it; producing merged tensors here keeps one tensor in
/// memory at a time instead of the whole merged model. Nothing is cached: each read produces the bytes again.
/// </summary>
internal sealed unsafe class LazyBytes(int length, Func<byte[]> produce) : MemoryManager<byte>
{
    public override Memory<byte> Memory => CreateMemory(length);

    public override Span<byte> GetSpan() => Produce();

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        var data = Produce();
        var handle = GCHandle.Alloc(data, GCHandleType.Pinned);
        return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
    }

    // The MemoryHandle from Pin owns the GCHandle and frees it; there is nothing else to release.
    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }

    private byte[] Produce()
    {
        var data = produce();
        if (data.Length != length) throw new InvalidOperationException($"produced {data.Length} bytes where {length} were announced");
        return data;
    }
}
