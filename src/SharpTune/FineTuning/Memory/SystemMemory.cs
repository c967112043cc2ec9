using System.Globalization;

namespace SharpTune.FineTuning.Memory;

/// <summary>How much memory a new run may use, and how much this process has used at its peak (Linux).</summary>
public static class SystemMemory
{
    /// <summary>Memory available to a run, and where the figure comes from.</summary>
    public sealed record Available(long Bytes, string Source);

    /// <summary>
    /// The kernel's MemAvailable (/proc/meminfo: free memory plus what it can reclaim without swapping), capped by
    /// the room left under a cgroup v2 memory limit (/sys/fs/cgroup/memory.max − memory.current) when one is set;
    /// null where neither can be read (not Linux).
    /// </summary>
    public static Available? Read() =>
        FromFiles(ReadOrNull("/proc/meminfo"), ReadOrNull("/sys/fs/cgroup/memory.max"), ReadOrNull("/sys/fs/cgroup/memory.current"));

    /// <summary><see cref="Read"/> over the three files' contents (null for a file that does not exist).</summary>
    public static Available? FromFiles(string? meminfo, string? cgroupMax, string? cgroupCurrent)
    {
        long? memAvailable = meminfo is null ? null : KibibyteField(meminfo, "MemAvailable:");
        long? cgroupRoom = null;
        if (cgroupMax?.Trim() is { } max && max != "max" && long.TryParse(max, NumberStyles.None, CultureInfo.InvariantCulture, out long limit))
        {
            long current = long.TryParse(cgroupCurrent?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long c) ? c : 0;
            cgroupRoom = Math.Max(0, limit - current);
        }
        return (memAvailable, cgroupRoom) switch
        {
            (null, null) => null,
            ({ } m, null) => new Available(m, "MemAvailable"),
            (null, { } g) => new Available(g, "cgroup memory.max − memory.current"),
            ({ } m, { } g) => g < m ? new Available(g, "cgroup memory.max − memory.current") : new Available(m, "MemAvailable, under the cgroup limit"),
        };
    }

    /// <summary>This process's peak resident set size (VmHWM in /proc/self/status), or null off Linux.</summary>
    public static long? PeakResidentBytes() => ReadOrNull("/proc/self/status") is { } status ? KibibyteField(status, "VmHWM:") : null;

    /// <summary>Another process's peak resident memory (VmHWM), as <see cref="PeakResidentBytes()"/>; null once it has exited or off Linux.</summary>
    public static long? PeakResidentBytes(int processId) => ReadOrNull($"/proc/{processId}/status") is { } status ? KibibyteField(status, "VmHWM:") : null;

    /// <summary>A "Name:   1234 kB" line's value in bytes.</summary>
    private static long? KibibyteField(string text, string name)
    {
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal)) continue;
            string value = line[name.Length..].Trim().Split(' ')[0];
            return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long kib) ? kib * 1024 : null;
        }
        return null;
    }

    private static string? ReadOrNull(string path)
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
