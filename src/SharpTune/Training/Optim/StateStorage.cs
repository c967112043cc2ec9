using System.Buffers;
using System.Runtime.InteropServices;
using SharpTune.Engine;

namespace SharpTune.Training.Optim;

/// <summary>One buffer of optimizer state: fp32 values (moments, block scales) or 8-bit codes.</summary>
internal readonly record struct StateSlot(DType DType, int Count)
{
    public long ByteSize => (long)Count * DTypeInfo.SizeOf(DType);
}

/// <summary>
/// The memory an optimizer keeps its state in, laid out once as a list of slots (zero-initialised, as torch and
/// bitsandbytes initialise their moments). <see cref="Create"/> picks ordinary managed arrays or, for the paged
/// optimizers, a memory-mapped temporary file (<see cref="PagedStateStorage"/>); the update code sees spans either
/// way, so paged and unpaged optimizers compute the same bits.
/// </summary>
internal abstract class StateStorage : IDisposable
{
    protected StateStorage(IReadOnlyList<StateSlot> slots)
    {
        Slots = slots.ToArray();
    }

    public IReadOnlyList<StateSlot> Slots { get; }

    /// <summary>Bytes of state held (the sum of the slots' sizes).</summary>
    public long Bytes => Slots.Sum(s => s.ByteSize);

    public static StateStorage Create(IReadOnlyList<StateSlot> slots, bool paged) =>
        paged ? new PagedStateStorage(slots) : new ArrayStateStorage(slots);

    public Span<float> Floats(int slot)
    {
        if (Slots[slot].DType != DType.F32) throw new InvalidOperationException($"state slot {slot} holds {Slots[slot].DType}, not F32");
        return FloatSpan(slot);
    }

    public Span<byte> Codes(int slot)
    {
        if (Slots[slot].DType != DType.U8) throw new InvalidOperationException($"state slot {slot} holds {Slots[slot].DType}, not U8");
        return ByteSpan(slot);
    }

    /// <summary>The slot's bytes in place (little-endian, as safetensors stores them).</summary>
    public Span<byte> RawBytes(int slot) =>
        Slots[slot].DType == DType.F32 ? MemoryMarshal.AsBytes(FloatSpan(slot)) : ByteSpan(slot);

    protected abstract Span<float> FloatSpan(int slot);

    protected abstract Span<byte> ByteSpan(int slot);

    /// <summary>The slot's bytes as memory for the safetensors writer, read in place when the file is written.</summary>
    public ReadOnlyMemory<byte> Memory(int slot) => new SlotMemory(this, slot).Memory;

    /// <summary>Pins the slot's bytes (the handle unpins them when the storage moves them; mapped memory never moves).</summary>
    protected abstract MemoryHandle Pin(int slot, int byteIndex);

    public abstract void Dispose();

    private sealed class SlotMemory(StateStorage storage, int slot) : MemoryManager<byte>
    {
        public override Memory<byte> Memory => CreateMemory(checked((int)storage.Slots[slot].ByteSize));

        public override Span<byte> GetSpan() => storage.RawBytes(slot);

        public override MemoryHandle Pin(int elementIndex = 0) => storage.Pin(slot, elementIndex);

        // The MemoryHandle from Pin releases whatever pinned it; there is nothing else to release.
        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}

/// <summary>State in ordinary managed arrays, one per slot (what torch's CPU AdamW does with its moment tensors).</summary>
internal sealed unsafe class ArrayStateStorage : StateStorage
{
    private readonly Array[] _arrays;

    public ArrayStateStorage(IReadOnlyList<StateSlot> slots) : base(slots)
    {
        _arrays = slots.Select(s => s.DType == DType.F32 ? (Array)new float[s.Count] : new byte[s.Count]).ToArray();
    }

    protected override Span<float> FloatSpan(int slot) => (float[])_arrays[slot];

    protected override Span<byte> ByteSpan(int slot) => (byte[])_arrays[slot];

    protected override MemoryHandle Pin(int slot, int byteIndex)
    {
        var handle = GCHandle.Alloc(_arrays[slot], GCHandleType.Pinned);
        return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + byteIndex, handle);
    }

    // The arrays are the garbage collector's to free; there is nothing else to release.
    public override void Dispose()
    {
    }
}
