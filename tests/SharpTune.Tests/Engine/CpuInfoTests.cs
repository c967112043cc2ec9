using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

/// <summary>A test of /proc/cpuinfo's x86 lines; skipped with the reason where the file or its "cpu family" line is missing.</summary>
public sealed class X86CpuInfoFactAttribute : FactAttribute
{
    public X86CpuInfoFactAttribute()
    {
        if (!File.Exists("/proc/cpuinfo")) Skip = "needs Linux's /proc/cpuinfo";
        else if (!File.ReadLines("/proc/cpuinfo").Any(line => line.StartsWith("cpu family", StringComparison.Ordinal)))
            Skip = "this /proc/cpuinfo has no 'cpu family' line (not an x86 CPU)";
    }
}

public sealed class CpuInfoTests
{
    [X86CpuInfoFact]
    public void FamilyAndModelNumberAreReadAsNumbers()
    {
        // The bench report names the CPU by these where a VM's model name ("AMD EPYC") does not say which it is.
        Assert.Matches("^[0-9]+$", CpuInfo.Family);
        Assert.Matches("^[0-9]+$", CpuInfo.ModelNumber);
        Assert.NotNull(CpuInfo.ModelName);
    }
}
