using System.Runtime.InteropServices;

namespace SharpTune.Engine;

/// <summary>
/// A 64-byte aligned native fp32 buffer that only grows. Held in [ThreadStatic] fields, so its finalizer returns
/// the memory once the owning thread is gone and short-lived caller threads do not leak.
/// </summary>
internal sealed unsafe class ScratchBuffer
{
    private float* _data;
    private long _capacity;

    public float* Get(long count)
    {
        if (count > _capacity)
        {
            NativeMemory.AlignedFree(_data);
            _data = null;
            long size = Math.Max(count, 16);
            _data = (float*)NativeMemory.AlignedAlloc((nuint)(size * sizeof(float)), 64);
            _capacity = size;
        }
        return _data;
    }

    ~ScratchBuffer() => NativeMemory.AlignedFree(_data);
}
