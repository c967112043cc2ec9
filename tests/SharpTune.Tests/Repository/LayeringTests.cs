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

    /// <summary>
    /// The backend owns its buffers (issue 14 item 1): a <see cref="SharpTune.Engine.Tensor"/> is a handle with no
    /// member that reaches its storage, and each implementation is a private type of the backend that allocates it, so
    /// model, tuner and inference code can touch activations only through backend calls and transfers.
    /// </summary>
    [Fact]
    public void OnlyItsBackendReachesATensorsStorage()
    {
        var tensor = typeof(SharpTune.Engine.Tensor);
        var storage = tensor.GetMembers(BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Where(m => m.DeclaringType == tensor && MemberType(m) is { } type && ExposesStorage(type))
            .Select(m => $"{m.MemberType} {m.Name}").ToList();
        Assert.True(storage.Count == 0, "Tensor exposes storage: " + string.Join(", ", storage));

        var implementations = tensor.Assembly.GetTypes().Where(t => t.IsSubclassOf(tensor)).ToList();
        Assert.NotEmpty(implementations);
        foreach (var implementation in implementations)
            Assert.True(implementation.IsNestedPrivate && typeof(SharpTune.Engine.IComputeBackend).IsAssignableFrom(implementation.DeclaringType),
                $"{implementation.FullName} must be a private type of the backend that allocates it");
    }

    private static Type? MemberType(MemberInfo member) => member switch
    {
        FieldInfo f => f.FieldType,
        PropertyInfo p => p.PropertyType,
        MethodInfo m => m.ReturnType,
        _ => null,
    };

    /// <summary>A float array, span or memory, a pointer or a reference: what would hand out the values (the int[] shape does not).</summary>
    private static bool ExposesStorage(Type type) =>
        type.IsPointer || type.IsByRef || type == typeof(nint) || type == typeof(float[]) ||
        type.IsGenericType && type.GetGenericArguments().Contains(typeof(float)) && type.GetGenericTypeDefinition() is var g &&
        (g == typeof(Span<>) || g == typeof(ReadOnlySpan<>) || g == typeof(Memory<>) || g == typeof(ReadOnlyMemory<>));

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
