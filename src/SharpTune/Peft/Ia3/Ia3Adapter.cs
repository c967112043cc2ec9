using System.Runtime.CompilerServices;
using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Peft.Ia3;

/// <summary>
/// A trained IA3 adapter folder read whole (adapter_config.json + adapter_model.safetensors), written by SharpTune or
/// by Python PEFT: one ia3_l vector per wrapped Linear, applied unmerged as an <see cref="Ia3Layer"/> each.
/// </summary>
public sealed class Ia3Adapter : IModelAdapter
{
    public string Directory { get; }
    public Ia3Config Config { get; }
    /// <summary>Each wrapped Linear's vector by module path, with the shape the file gives it.</summary>
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Vectors { get; }
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; } = new Dictionary<string, (long[], float[])>();

    private Ia3Adapter(string directory, Ia3Config config, Dictionary<string, (long[], float[])> vectors)
    {
        Directory = directory;
        Config = config;
        Vectors = vectors;
    }

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterReader() => PeftAdapterFolders.Register(Ia3Config.PeftType, Load, Ia3FineTuning.Resume);

    /// <exception cref="InvalidDataException">The config or the weights are unreadable, or a vector's shape contradicts feedforward_modules.</exception>
    public static Ia3Adapter Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        var config = Ia3Config.Load(directory);
        var vectors = Ia3AdapterFile.Load(directory);
        foreach (var (module, (shape, _)) in vectors)
        {
            bool feedforward = config.IsFeedforward(module);
            if (feedforward ? shape[0] != 1 : shape[1] != 1)
                throw new InvalidDataException(
                    $"{Path.Combine(directory, Ia3AdapterFile.FileName)}: '{Ia3AdapterFile.Key(module)}' is [{string.Join(", ", shape)}], but feedforward_modules " +
                    $"{(feedforward ? "names" : "does not name")} the module, so it must be {(feedforward ? "[1, in]" : "[out, 1]")}");
        }
        return new Ia3Adapter(directory, config, vectors);
    }

    public string Describe() =>
        $"{Vectors.Count} IA3 modules ({Vectors.Keys.Count(Config.IsFeedforward)} feed-forward, scaling their input)";

    /// <summary>
    /// The layers, sized by the Linears of the model the adapter was last checked against (<see cref="ValidateAgainst"/>):
    /// the file gives only the scaled side's width.
    /// </summary>
    /// <exception cref="InvalidOperationException">The adapter has not been checked against a model.</exception>
    public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend)
    {
        var shapes = _linearShapes ?? throw new InvalidOperationException($"{Directory}: an IA3 adapter is checked against a model (ValidateAgainst) before its layers are made");
        return Vectors.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            var (outFeatures, inFeatures) = shapes[kv.Key];
            // A copy, so training the layer leaves the loaded adapter as read.
            return (ILinearTuner)new Ia3Layer(kv.Key, inFeatures, outFeatures, Config.IsFeedforward(kv.Key), (float[])kv.Value.Data.Clone(), backend);
        }).ToArray();
    }

    /// <summary>[out, in] of each wrapped Linear in the model last validated against.</summary>
    private Dictionary<string, (int Out, int In)>? _linearShapes;

    /// <summary>Every module must be a Linear of the base whose scaled side has the vector's length; the shapes size the layers <see cref="CreateTuners"/> makes.</summary>
    /// <exception cref="InvalidDataException">The first mismatch, naming the module and both shapes.</exception>
    public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName)
    {
        var shapes = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        foreach (var (module, (shape, _)) in Vectors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var weight = linearShape(module)
                ?? throw new InvalidDataException($"{Directory}: module '{module}' is not a Linear layer of the base model {baseName}");
            bool feedforward = Config.IsFeedforward(module);
            if (weight.Length != 2 || (feedforward ? shape[1] != weight[1] : shape[0] != weight[0]))
                throw new InvalidDataException(
                    $"{Directory}: module '{module}' has ia3_l [{string.Join(", ", shape)}], but the base model {baseName} has '{module}.weight' " +
                    $"[{string.Join(", ", weight)}]; was the adapter trained on another model?");
            shapes[module] = ((int)weight[0], (int)weight[1]);
        }
        _linearShapes = shapes;
    }
}
