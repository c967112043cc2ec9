using System.Runtime.CompilerServices;
using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Peft.Lora;

/// <summary>
/// A trained LoRA adapter folder read whole (adapter_config.json + adapter_model.safetensors): the low-rank pairs
/// keyed by the wrapped Linear's module path, and the full tensors of modules_to_save keyed by their base-model
/// tensor name (e.g. lm_head.weight). Written by SharpTune or by Python PEFT. A model applies it unmerged as one
/// <see cref="LoraLayer"/> per pair.
/// </summary>
public sealed class LoraAdapter : IModelAdapter
{
    public string Directory { get; }
    public LoraConfig Config { get; }
    public IReadOnlyDictionary<string, LoraPair> Pairs { get; }
    /// <summary>Tensors that replace the base tensor of the same name (PEFT's modules_to_save).</summary>
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; }

    /// <summary>The factor on B·A (alpha / r, or alpha / √r with rsLoRA), rounded to float32 as PEFT's float32 layers use it.</summary>
    public float Scaling => (float)Config.Scaling;

    private LoraAdapter(string directory, LoraConfig config, Dictionary<string, LoraPair> pairs, Dictionary<string, (long[], float[])> replaced)
    {
        Directory = directory;
        Config = config;
        Pairs = pairs;
        ReplacedTensors = replaced;
    }

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterReader() => PeftAdapterFolders.Register("LORA", Load, LoraFineTuning.Resume);

    public string Describe() =>
        $"r = {Config.Rank}, scaling {Config.Scaling:0.####}, {Pairs.Count} {(Config.UseDora ? "DoRA" : "LoRA")} modules, {ReplacedTensors.Count} replaced tensors";

    public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend) =>
        Pairs.Values.OrderBy(p => p.ModulePath, StringComparer.Ordinal).Select(p => LoraLayer.ForPair(p, Config, backend)).ToArray();

    public static LoraAdapter Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        var config = LoraConfig.Load(directory);
        var (pairs, extra) = LoraAdapterFile.Load(directory, config.Rank, config.UseDora);
        if (pairs.Count == 0 && extra.Count == 0)
            throw new InvalidDataException($"{directory}: {LoraAdapterFile.FileName} holds no LoRA weights");
        return new LoraAdapter(directory, config, pairs, extra);
    }

    /// <summary>
    /// Checks the adapter against a base model before anything is applied: every LoRA module must be a Linear of the
    /// base whose [out, in] weight shape matches lora_B's rows and lora_A's columns, and every replaced tensor must
    /// exist with the same shape. <paramref name="linearShape"/> gives the weight shape of the Linear at a module path
    /// and <paramref name="tensorShape"/> a base tensor's shape by name; both null when the base has none.
    /// </summary>
    /// <exception cref="InvalidDataException">The first mismatch, naming the module and both shapes.</exception>
    public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName)
    {
        foreach (var pair in Pairs.Values.OrderBy(p => p.ModulePath, StringComparer.Ordinal))
        {
            string weight = pair.ModulePath + ".weight";
            var shape = linearShape(pair.ModulePath)
                ?? throw new InvalidDataException($"{Directory}: module '{pair.ModulePath}' is not a Linear layer of the base model {baseName}");
            if (shape.Length != 2 || shape[0] != pair.OutFeatures || shape[1] != pair.InFeatures)
                throw new InvalidDataException(
                    $"{Directory}: module '{pair.ModulePath}' has lora_A [{pair.Rank}, {pair.InFeatures}] and lora_B [{pair.OutFeatures}, {pair.Rank}], " +
                    $"but the base model {baseName} has '{weight}' [{string.Join(", ", shape)}]; was the adapter trained on another model?");
        }
        foreach (var (name, (adapterShape, _)) in ReplacedTensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var shape = tensorShape(name)
                ?? throw new InvalidDataException($"{Directory}: modules_to_save tensor '{name}' is not in the base model {baseName}");
            if (!shape.SequenceEqual(adapterShape))
                throw new InvalidDataException(
                    $"{Directory}: modules_to_save tensor '{name}' is [{string.Join(", ", adapterShape)}], but the base model {baseName} has [{string.Join(", ", shape)}]");
        }
    }
}
