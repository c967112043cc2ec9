using System.Runtime.CompilerServices;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft.Lora;

namespace SharpTune.Peft.BitFit;

/// <summary>
/// A trained BitFit folder (see <see cref="BitFitConfig"/>): no tuner layers, only base tensors it replaces (the
/// trained biases and norm weights), so serving, stacking and export treat it as they treat modules_to_save.
/// </summary>
public sealed class BitFitAdapter : IModelAdapter
{
    public const string FileName = LoraAdapterFile.FileName;

    public string Directory { get; }
    public BitFitConfig Config { get; }
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; }

    private BitFitAdapter(string directory, BitFitConfig config, Dictionary<string, (long[], float[])> tensors)
    {
        Directory = directory;
        Config = config;
        ReplacedTensors = tensors;
    }

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterReader() => PeftAdapterFolders.Register(BitFitConfig.PeftType, Load, BitFitFineTuning.Resume);

    /// <exception cref="InvalidDataException">The config is unreadable, or a tensor is not a vector (BitFit trains biases and norm weights only).</exception>
    public static BitFitAdapter Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        var config = BitFitConfig.Load(directory);
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: {FileName} is missing", path);
        using var file = SafetensorsFile.Open(path);
        var tensors = new Dictionary<string, (long[], float[])>(StringComparer.Ordinal);
        foreach (var t in file.Tensors)
        {
            if (t.Shape.Length != 1)
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is [{string.Join(", ", t.Shape)}]; a BitFit folder holds biases and norm weights (vectors) only");
            tensors[t.Name] = (t.Shape, file.ReadFloat32(t.Name));
        }
        if (tensors.Count == 0) throw new InvalidDataException($"{path}: holds no tensors");
        return new BitFitAdapter(directory, config, tensors);
    }

    public string Describe() => $"BitFit, {ReplacedTensors.Count} replaced tensors ({ReplacedTensors.Keys.Count(n => n.EndsWith(".bias", StringComparison.Ordinal))} biases)";

    public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend) => [];

    /// <summary>Every tensor must be a base tensor of the same shape.</summary>
    /// <exception cref="InvalidDataException">The first tensor the base lacks or has in another shape.</exception>
    public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName)
    {
        foreach (var (name, (shape, _)) in ReplacedTensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var baseShape = tensorShape(name) ?? throw new InvalidDataException($"{Directory}: tensor '{name}' is not in the base model {baseName}");
            if (!baseShape.SequenceEqual(shape))
                throw new InvalidDataException(
                    $"{Directory}: tensor '{name}' is [{string.Join(", ", shape)}], but the base model {baseName} has [{string.Join(", ", baseShape)}]; was it trained on another model?");
        }
    }
}
