using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace SharpTune.Training.Optim;

/// <summary>
/// Optimizer state in a shared, file-backed memory mapping of a temporary file: what "paged" means on a CPU.
/// <para>
/// bitsandbytes' paged optimizers put their state in CUDA unified memory, so under GPU memory pressure the driver
/// evicts state pages to CPU RAM and pages them back on access instead of failing with out-of-memory. A CPU has no
/// second memory tier managed by a driver; the nearest equivalent is to let the operating system's page cache own
/// the state. The state lives in <c>sharptune-optimizer-*.state</c> in the system temp folder (<c>TMPDIR</c> on
/// Unix), mapped read-write and shared, so its pages are page-cache pages of that file: the kernel keeps them
/// resident while memory allows, writes dirty ones back to the file and drops them under pressure, and reads them
/// back when the next update touches them. Anonymous heap memory could only go to swap (or get the process killed
/// where there is none). The price is disk traffic when memory is short; nothing is prefetched. The file starts as
/// zeros (the initial moments), its blocks reserved up front, and is not meant to persist: it is opened delete-on-close, so
/// <see cref="Dispose"/> removes it. When the temp folder is a RAM-backed tmpfs, paging out goes to swap like
/// heap memory does: point TMPDIR at a disk to get the benefit.
/// </para>
/// </summary>
internal sealed unsafe class PagedStateStorage : StateStorage
{
    /// <summary>Slot offsets are rounded up to a cache line, so no two slots share one.</summary>
    private const long Alignment = 64;

    private readonly long[] _offsets;
    private readonly FileStream _file;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private bool _disposed;

    /// <summary>The backing file (it exists until <see cref="Dispose"/>).</summary>
    public string FilePath { get; }

    public PagedStateStorage(IReadOnlyList<StateSlot> slots) : base(slots)
    {
        _offsets = new long[slots.Count];
        long size = 0;
        for (int i = 0; i < slots.Count; i++)
        {
            _offsets[i] = size;
            size += (slots[i].ByteSize + Alignment - 1) / Alignment * Alignment;
        }
        // A mapping cannot be empty; an optimizer without parameters still gets one line of file.
        size = Math.Max(size, Alignment);

        FilePath = Path.Combine(Path.GetTempPath(), $"sharptune-optimizer-{Guid.NewGuid():N}.state");
        // Preallocating reserves the disk blocks now: a full disk fails here, with a message, instead of faulting
        // later when a write to the mapping finds no block to land in.
        _file = new FileStream(FilePath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            Options = FileOptions.DeleteOnClose,
            PreallocationSize = size,
        });
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            _file.SetLength(size);
            map = MemoryMappedFile.CreateFromFile(_file, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
            view = map.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer + view.PointerOffset;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            view?.Dispose();
            map?.Dispose();
            _file.Dispose();
            throw new IOException($"cannot map {size} bytes of paged optimizer state in {FilePath}: {e.Message}", e);
        }
        _map = map;
        _view = view;
    }

    protected override Span<float> FloatSpan(int slot) => new(Address(slot), Slots[slot].Count);

    protected override Span<byte> ByteSpan(int slot) => new(Address(slot), Slots[slot].Count);

    protected override MemoryHandle Pin(int slot, int byteIndex) => new((byte*)Address(slot) + byteIndex);

    private void* Address(int slot)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _base + _offsets[slot];
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
        _file.Dispose();
    }
}
