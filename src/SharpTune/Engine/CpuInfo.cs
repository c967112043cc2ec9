namespace SharpTune.Engine;

/// <summary>
/// What the CPU says about itself on Linux (/proc/cpuinfo: the first processor's model name, family, model number and
/// flags); elsewhere, or where the file cannot be read, unknown (no model name, family or model number, no flags).
/// </summary>
public static class CpuInfo
{
    private static readonly Lazy<(string? ModelName, string? Family, string? ModelNumber, HashSet<string> Flags)> s_info = new(Read);

    /// <summary>The "model name" line, e.g. "Intel(R) Xeon(R) Platinum 8480+"; null where unknown.</summary>
    public static string? ModelName => s_info.Value.ModelName;

    /// <summary>
    /// The "cpu family" line, e.g. "25" (AMD Zen 3/4) or "6" (Intel); null where unknown. With <see cref="ModelNumber"/>
    /// it names the microarchitecture where a virtual machine's model name ("AMD EPYC") does not.
    /// </summary>
    public static string? Family => s_info.Value.Family;

    /// <summary>The "model" line (the model number within the family), e.g. "17"; null where unknown.</summary>
    public static string? ModelNumber => s_info.Value.ModelNumber;

    /// <summary>The kernel's CPU flags (avx2, avx512f, avx512_bf16, amx_bf16, ...).</summary>
    public static IReadOnlySet<string> Flags => s_info.Value.Flags;

    private static (string?, string?, string?, HashSet<string>) Read()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return (null, null, null, []);
            string? model = null, family = null, modelNumber = null, flags = null;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (model is null && line.StartsWith("model name", StringComparison.Ordinal)) model = Value(line);
                if (family is null && Key(line) == "cpu family") family = Value(line);
                if (modelNumber is null && Key(line) == "model") modelNumber = Value(line);
                if (flags is null && line.StartsWith("flags", StringComparison.Ordinal)) flags = Value(line);
                if (model is not null && family is not null && modelNumber is not null && flags is not null) break;
            }
            return (model, family, modelNumber, flags is null ? [] : [.. flags.Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, null, null, []);
        }
    }

    private static string Key(string line) => line.IndexOf(':') is >= 0 and int colon ? line[..colon].Trim() : "";

    private static string Value(string line) => line[(line.IndexOf(':') + 1)..].Trim();
}
