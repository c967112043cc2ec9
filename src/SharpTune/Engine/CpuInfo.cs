namespace SharpTune.Engine;

/// <summary>
/// What the CPU says about itself on Linux (/proc/cpuinfo: the first processor's model name and flags); elsewhere,
/// or where the file cannot be read, unknown (no model name, no flags).
/// </summary>
public static class CpuInfo
{
    private static readonly Lazy<(string? ModelName, HashSet<string> Flags)> s_info = new(Read);

    /// <summary>The "model name" line, e.g. "Intel(R) Xeon(R) Platinum 8480+"; null where unknown.</summary>
    public static string? ModelName => s_info.Value.ModelName;

    /// <summary>The kernel's CPU flags (avx2, avx512f, avx512_bf16, amx_bf16, ...).</summary>
    public static IReadOnlySet<string> Flags => s_info.Value.Flags;

    private static (string?, HashSet<string>) Read()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return (null, []);
            string? model = null;
            string? flags = null;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (model is null && line.StartsWith("model name", StringComparison.Ordinal)) model = Value(line);
                if (flags is null && line.StartsWith("flags", StringComparison.Ordinal)) flags = Value(line);
                if (model is not null && flags is not null) break;
            }
            return (model, flags is null ? [] : [.. flags.Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, []);
        }
    }

    private static string Value(string line) => line[(line.IndexOf(':') + 1)..].Trim();
}
