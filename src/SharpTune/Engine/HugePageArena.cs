using System.Runtime.InteropServices;

namespace SharpTune.Engine;

/// <summary>
/// One block of native memory the kernel is asked to back with transparent huge pages (2 MiB), holding copies of
/// weight matrices that decoding streams once per token. Read through 4 KiB pages of a memory-mapped checkpoint, the
/// weights cost a TLB miss every 4 KiB; from huge pages the same GEMV streamed ~15–30% more GB/s on the development
/// machine. A matrix copied from the mapped checkpoint has its mapped pages released as it is copied
/// (<see cref="MappedPages"/>), so the resident set holds the weights once. Linux with THP set to "always" or
/// "madvise" only (<see cref="IsSupported"/>).
/// </summary>
public sealed unsafe class HugePageArena : IDisposable
{
    private const long HugePage = 2 << 20;
    private const int MadviseHugePage = 14;
    private const long CopySlice = 8 << 20;

    private static readonly nint s_madvise = MappedPages.Madvise;

    private byte* _block;
    private readonly long _capacity;
    private long _used;

    /// <summary>Whether huge pages can be asked for here: Linux, madvise found, THP not switched off.</summary>
    public static bool IsSupported { get; } = s_madvise != 0 && TransparentHugePagesEnabled();

    /// <param name="bytes">Room for the matrices to be copied in (each is placed on a 64-byte boundary).</param>
    public HugePageArena(long bytes)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("transparent huge pages are not available here");
        _capacity = (bytes + HugePage - 1) / HugePage * HugePage;
        _block = (byte*)NativeMemory.AlignedAlloc((nuint)_capacity, (nuint)HugePage);
        _ = ((delegate* unmanaged<nint, nuint, int, int>)s_madvise)((nint)_block, (nuint)_capacity, MadviseHugePage);
    }

    /// <summary>
    /// Whether copying <paramref name="bytes"/> leaves room: at most half of the memory the kernel reports available.
    /// The copy is anonymous memory, which cannot be dropped and re-read under pressure as mapped file pages can, so
    /// a model close to the machine's memory stays on its mapping.
    /// </summary>
    public static bool Affords(long bytes)
    {
        string? line = ReadSystemFile("/proc/meminfo")?.Split('\n').FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
        if (line is null) return false;
        long availableKiB = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        return bytes <= availableKiB * 1024 / 2;
    }

    /// <summary>Room a matrix takes in an arena.</summary>
    public static long SizeOf(WeightMatrix matrix) => (Bytes(matrix) + 63) & ~63L;

    /// <summary>Copies a matrix in and returns the copy's view.</summary>
    /// <param name="releaseMappedSource">
    /// The source is a view into a read-only file mapping (a checkpoint): release its pages once copied. Never for
    /// other memory, whose contents the release would discard.
    /// </param>
    public WeightMatrix CopyIn(WeightMatrix source, bool releaseMappedSource)
    {
        ObjectDisposedException.ThrowIf(_block is null, this);
        long bytes = Bytes(source);
        if (_used + bytes > _capacity) throw new InvalidOperationException($"the arena holds {_capacity} bytes; {_used + bytes} are needed");
        byte* destination = _block + _used;
        // In slices, each released once copied: a whole lm_head (hundreds of MB) mapped next to its copy would
        // raise the peak resident set by its size.
        for (long offset = 0; offset < bytes; offset += CopySlice)
        {
            long length = Math.Min(CopySlice, bytes - offset);
            Buffer.MemoryCopy((byte*)source.Data + offset, destination + offset, length, length);
            if (releaseMappedSource) MappedPages.Release((byte*)source.Data + offset, length);
        }
        _used += SizeOf(source);
        return new WeightMatrix(destination, source.DType, source.Rows, source.Cols);
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_block);
        _block = null;
    }

    private static long Bytes(WeightMatrix m) => (long)m.Rows * m.Cols * DTypeInfo.SizeOf(m.DType);

    private static bool TransparentHugePagesEnabled() =>
        ReadSystemFile("/sys/kernel/mm/transparent_hugepage/enabled") is string mode
        && (mode.Contains("[always]", StringComparison.Ordinal) || mode.Contains("[madvise]", StringComparison.Ordinal));

    /// <summary>A /proc or /sys file's text, or null where it cannot be read (another OS, a container that hides it).</summary>
    private static string? ReadSystemFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
