using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

public class GemmKernelSelectionTests
{
    [Fact]
    public void Available_AlwaysIncludesManaged_AndEveryEntryCanBeCreated()
    {
        var available = GemmKernels.Available();
        Assert.Contains("managed", available);
        foreach (string name in available) Assert.NotNull(GemmKernels.Create(name));
    }

    [Fact]
    public void Create_UnknownName_NamesWhatIsAvailable()
    {
        var error = Assert.Throws<ArgumentException>(() => GemmKernels.Create("cublas"));
        Assert.Contains("cublas", error.Message);
        Assert.Contains("managed", error.Message);
    }

    [DefaultGemmKernelFact]
    public void Default_IsTheFirstAvailableInPreferenceOrder_AndDescribes()
    {
        Assert.Same(GemmKernels.Create(GemmKernels.Available()[0]), GemmKernels.Default);
        Assert.Matches(@"^gemm backend: \S+.*, \d+ threads?$", GemmKernels.Describe());
    }
}

/// <summary>A check of the default kernel choice: skipped with the reason when the environment forces a kernel.</summary>
public sealed class DefaultGemmKernelFactAttribute : FactAttribute
{
    public DefaultGemmKernelFactAttribute()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(GemmKernels.EnvironmentVariable)))
            Skip = $"{GemmKernels.EnvironmentVariable} is set, so the default kernel is the one it names, not the preference order's first";
    }
}
