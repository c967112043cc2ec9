using System.Reflection;
using SharpTune.Tests.Repository.LayeringSample.Lower;
using SharpTune.Tests.Repository.LayeringSample.Upper;

namespace SharpTune.Tests.Repository;

/// <summary>The layer order of docs/architecture.md holds in the compiled library, the server, the board and the CLI.</summary>
public sealed class LayeringTests
{
    private static IReadOnlyList<LayerRule.Layer> DocumentedLayers() =>
        LayerRule.FromArchitectureTable(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "architecture.md")));

    private static IEnumerable<Type> CheckedTypes() =>
        new[] { typeof(SharpTune.Engine.DType), typeof(SharpTune.Api.ApiServer), typeof(SharpTune.Board.BoardServer), typeof(SharpTune.Cli.Program) }
            .SelectMany(t => t.Assembly.GetTypes());

    [Fact]
    public void NoNamespaceUsesOneAboveItsLayer()
    {
        var violations = LayerRule.Violations(CheckedTypes(), DocumentedLayers());
        Assert.True(violations.Count == 0, "layer rule of docs/architecture.md broken:\n" + string.Join("\n", violations.Select(v => v.ToString()).Distinct()));
    }

    /// <summary>
    /// Tuner code computes on the backend of the model it is injected into (issue 14 item 1: model and tuner code call
    /// no static kernel), so another backend runs LoRA too.
    /// </summary>
    [Fact]
    public void TunerCodeCallsNoStaticKernel()
    {
        var staticKernels = typeof(SharpTune.Engine.IComputeBackend).Assembly.GetTypes()
            .Where(t => t.Namespace == "SharpTune.Engine" && t.IsAbstract && t.IsSealed && (t.Name.EndsWith("Kernels", StringComparison.Ordinal) || t == typeof(SharpTune.Engine.SkinnyGemm)))
            .ToHashSet();
        Assert.Contains(typeof(SharpTune.Engine.GemmKernels), staticKernels);
        var uses = CheckedTypes().Where(t => t.Namespace?.StartsWith("SharpTune.Peft", StringComparison.Ordinal) == true)
            .SelectMany(t => LayerRule.UsedTypes(t).Where(staticKernels.Contains).Select(k => $"{t.FullName} uses {k.Name}"))
            .Distinct().ToList();
        Assert.True(uses.Count == 0, "tuner code calls static kernels instead of its backend:\n" + string.Join("\n", uses));
    }

    [Fact]
    public void TheTableNamesTheLibraryTheServerTheBoardAndTheCli()
    {
        var layers = DocumentedLayers();
        Assert.Equal("foundation", layers[0].Name);
        Assert.Equal(["SharpTune.Foundation"], layers[0].Namespaces);
        Assert.Equal(["SharpTune.Api"], layers[^3].Namespaces);
        Assert.Equal(["SharpTune.Board"], layers[^2].Namespaces);
        Assert.Equal(["SharpTune.Cli"], layers[^1].Namespaces);
        foreach (var type in CheckedTypes()) LayerRule.LayerOf(type.Namespace, layers);
    }

    private static readonly IReadOnlyList<LayerRule.Layer> SampleLayers =
    [
        new(0, "lower", ["SharpTune.Tests.Repository.LayeringSample.Lower"]),
        new(1, "upper", ["SharpTune.Tests.Repository.LayeringSample.Upper"]),
    ];

    [Fact]
    public void AUseInAMethodBodyOnlyIsFound()
    {
        var violation = Assert.Single(LayerRule.Violations([typeof(CallsUpward)], SampleLayers));
        Assert.Equal("SharpTune.Tests.Repository.LayeringSample.Lower.CallsUpward (lower) uses SharpTune.Tests.Repository.LayeringSample.Upper.Helper (upper), a layer above it", violation.ToString());
    }

    [Fact]
    public void AUseInAFieldOrSignatureIsFoundAndDownwardUsesPass()
    {
        Assert.Equal([typeof(Marker)], LayerRule.Violations([typeof(HoldsUpward)], SampleLayers).Select(v => v.Used).Distinct());
        Assert.Empty(LayerRule.Violations([typeof(UsesDownward)], SampleLayers));
    }

    [Fact]
    public void TheTableIsReadFromItsFolderColumn()
    {
        var layers = LayerRule.FromArchitectureTable("""
            intro
            | layer | folder | what lives there |
            |---|---|---|
            | low | `src/SharpTune/Low/` | `src/SharpTune/NotAFolder/` in prose |
            | data cleaning | `src/SharpTune/Data/Cleaning/` | x |
            | apps | `src/SharpTune.Cli/`, `bench/SharpTune.Bench/` | x |

            | layer | folder |
            |---|---|
            | ignored | `src/SharpTune/Later/` |
            """);
        Assert.Equal(["low", "data cleaning", "apps"], layers.Select(l => l.Name));
        Assert.Equal(["SharpTune.Low"], layers[0].Namespaces);
        Assert.Equal(["SharpTune.Data.Cleaning"], layers[1].Namespaces);
        Assert.Equal(["SharpTune.Cli"], layers[2].Namespaces);
        Assert.Equal("data cleaning", LayerRule.LayerOf("SharpTune.Data.Cleaning.Rules", [.. layers, new(3, "data", ["SharpTune.Data"])])!.Name);
        var unknown = Assert.Throws<InvalidOperationException>(() => LayerRule.LayerOf("SharpTune.Nowhere", layers));
        Assert.Contains("SharpTune.Nowhere", unknown.Message);
    }
}
