using System.Runtime.InteropServices;

namespace SharpTune.Engine;

/// <summary>
/// Hands the pages of a read-only memory-mapped range back to the operating system once their contents have been
/// turned into something else (quantised copies): touched file pages count in the process's resident set until
/// released. They stay in the page cache, and a later read maps them again. Linux (glibc) only; elsewhere a no-op.
/// </summary>
public static unsafe class MappedPages
{
    private const int MadviseDontNeed = 4;

    private static readonly nint s_madvise = FindMadvise();

    /// <summary>libc's madvise, or 0 where there is none (also used by <see cref="HugePageArena"/>).</summary>
    internal static nint Madvise => s_madvise;

    public static void Release(void* start, long bytes)
    {
        if (s_madvise == 0 || bytes <= 0) return;
        long page = Environment.SystemPageSize;
        // Whole pages only: a page shared with a neighbouring tensor is released too, which costs that neighbour
        // nothing but a re-read from the page cache.
        long first = (long)start & ~(page - 1);
        long end = ((long)start + bytes + page - 1) & ~(page - 1);
        _ = ((delegate* unmanaged<nint, nuint, int, int>)s_madvise)((nint)first, (nuint)(end - first), MadviseDontNeed);
    }

    private static nint FindMadvise() =>
        OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libc.so.6", out nint libc) && NativeLibrary.TryGetExport(libc, "madvise", out nint madvise)
            ? madvise
            : 0;
}
