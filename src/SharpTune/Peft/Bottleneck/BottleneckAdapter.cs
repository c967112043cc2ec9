using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Peft.Bottleneck;

/// <summary>
/// A bottleneck adapter folder of the adapters library (adapter_config.json + adapter.safetensors), written by
/// SharpTune or by the library's save_adapter(..., use_safetensors=True): one <see cref="BottleneckLayer"/> per
/// adapter block, on o_proj (attention_adapters) or down_proj (output_adapters) of its layer. Served unmerged; it
/// cannot be merged (<see cref="MergeRefusal"/>).
/// </summary>
public sealed partial class BottleneckAdapter : IModelAdapter
{
    public const string MergeRefusalText =
        "a bottleneck adapter cannot be merged into the model's weights: it adds up(act(down(h))) to the output h of o_proj and down_proj, " +
        "a nonlinear function that no change of a weight reproduces; serve it unmerged (chat, generate, api, compare, predict with the adapter)";

    /// <summary>One adapter block: where it sits and its four tensors as the file holds them.</summary>
    public sealed record Block(string ModulePath, string KeyPrefix, float[] DownWeight, float[] DownBias, float[] UpWeight, float[] UpBias);

    public string Directory { get; }
    public BottleneckConfig Config { get; }
    public IReadOnlyList<Block> Blocks { get; }
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; } = new Dictionary<string, (long[], float[])>();
    public string? MergeRefusal => MergeRefusalText;

    /// <summary>[out, in] of each wrapped Linear in the model last validated against.</summary>
    private Dictionary<string, (int Out, int In)>? _linearShapes;

    private BottleneckAdapter(string directory, BottleneckConfig config, IReadOnlyList<Block> blocks)
    {
        Directory = directory;
        Config = config;
        Blocks = blocks;
    }

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterReader() => PeftAdapterFolders.Register(BottleneckConfig.PeftType, Load, BottleneckFineTuning.Resume);

    /// <summary>The module an adapter block hooks: attention_adapters on the layer's o_proj, output_adapters on its down_proj.</summary>
    public static string ModulePathOf(string layerPrefix, string block) =>
        layerPrefix + (block == BottleneckAdapterFile.AttentionBlock ? ".self_attn.o_proj" : ".mlp.down_proj");

    [GeneratedRegex(@"^(?<layer>.+)\.(?<block>attention_adapters|output_adapters)\.adapters\.(?<name>[^.]+)\.(?<part>adapter_down\.0\.weight|adapter_down\.0\.bias|adapter_up\.weight|adapter_up\.bias)$")]
    private static partial Regex KeyPattern();

    /// <exception cref="InvalidDataException">The config or weights are unreadable, a tensor is not a bottleneck block's, or a block is incomplete or misshapen.</exception>
    public static BottleneckAdapter Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        var config = BottleneckConfig.Load(directory);
        var tensors = BottleneckAdapterFile.Load(directory);
        string path = Path.Combine(directory, BottleneckAdapterFile.FileName);
        var prefixes = new SortedSet<(string Layer, string Block)>();
        foreach (string name in tensors.Keys)
        {
            var match = KeyPattern().Match(name);
            if (!match.Success) throw new InvalidDataException($"{path}: tensor '{name}' is not a bottleneck adapter tensor (LAYER.attention_adapters|output_adapters.adapters.NAME.adapter_down.0|adapter_up.weight|bias)");
            if (match.Groups["name"].Value != config.Name)
                throw new InvalidDataException($"{path}: tensor '{name}' belongs to adapter '{match.Groups["name"].Value}', but adapter_config.json names '{config.Name}'");
            prefixes.Add((match.Groups["layer"].Value, match.Groups["block"].Value));
        }
        if (prefixes.Count == 0) throw new InvalidDataException($"{path}: holds no adapter tensors");
        var blocks = new List<Block>();
        foreach (var (layer, block) in prefixes)
        {
            string prefix = BottleneckAdapterFile.KeyPrefix(layer, block, config.Name);
            (long[] Shape, float[] Data) Get(string key) => tensors.TryGetValue(key, out var t) ? t : throw new InvalidDataException($"{path}: '{key}' is missing");
            var (downShape, down) = Get(BottleneckAdapterFile.DownWeightKey(prefix));
            var (downBiasShape, downBias) = Get(BottleneckAdapterFile.DownBiasKey(prefix));
            var (upShape, up) = Get(BottleneckAdapterFile.UpWeightKey(prefix));
            var (upBiasShape, upBias) = Get(BottleneckAdapterFile.UpBiasKey(prefix));
            if (downShape.Length != 2 || upShape.Length != 2 || downShape[0] != upShape[1] || downShape[1] != upShape[0]
                || downBiasShape.SequenceEqual([downShape[0]]) is false || upBiasShape.SequenceEqual([upShape[0]]) is false)
                throw new InvalidDataException(
                    $"{path}: {prefix}: adapter_down [{string.Join(", ", downShape)}] (bias [{string.Join(", ", downBiasShape)}]) and adapter_up " +
                    $"[{string.Join(", ", upShape)}] (bias [{string.Join(", ", upBiasShape)}]) are not a [b, hidden] / [hidden, b] pair");
            blocks.Add(new Block(ModulePathOf(layer, block), prefix, down, downBias, up, upBias));
        }
        return new BottleneckAdapter(directory, config, blocks);
    }

    public string Describe() =>
        $"bottleneck adapter '{Config.Name}', reduction factor {Config.ReductionFactor:0.###}, {BottleneckConfig.NonLinearityName(Config.NonLinearity)}, {Blocks.Count} blocks";

    /// <summary>The layers, sized by the Linears of the model the adapter was last checked against (<see cref="ValidateAgainst"/>).</summary>
    /// <exception cref="InvalidOperationException">The adapter has not been checked against a model.</exception>
    public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend)
    {
        var shapes = _linearShapes ?? throw new InvalidOperationException($"{Directory}: a bottleneck adapter is checked against a model (ValidateAgainst) before its layers are made");
        return Blocks.Select(b => (ILinearTuner)new BottleneckLayer(b.ModulePath, shapes[b.ModulePath].In, shapes[b.ModulePath].Out, b.KeyPrefix,
            Config.NonLinearity, (float)Config.Scaling, (float[])b.DownWeight.Clone(), (float[])b.DownBias.Clone(), (float[])b.UpWeight.Clone(),
            (float[])b.UpBias.Clone(), backend)).ToArray();
    }

    /// <summary>Every block's module must be a Linear of the base whose output width is the adapter's hidden size.</summary>
    /// <exception cref="InvalidDataException">The first mismatch, naming the block and both shapes.</exception>
    public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName)
    {
        var shapes = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        foreach (var block in Blocks)
        {
            var weight = linearShape(block.ModulePath)
                ?? throw new InvalidDataException($"{Directory}: {block.KeyPrefix} hooks '{block.ModulePath}', which is not a Linear layer of the base model {baseName}");
            if (weight.Length != 2 || weight[0] * block.DownBias.Length != block.DownWeight.Length)
                throw new InvalidDataException(
                    $"{Directory}: {block.KeyPrefix} has adapter_down [{block.DownBias.Length}, {block.DownWeight.Length / block.DownBias.Length}], but the base model " +
                    $"{baseName} has '{block.ModulePath}.weight' [{string.Join(", ", weight)}]; was the adapter trained on another model?");
            shapes[block.ModulePath] = ((int)weight[0], (int)weight[1]);
        }
        _linearShapes = shapes;
    }
}
