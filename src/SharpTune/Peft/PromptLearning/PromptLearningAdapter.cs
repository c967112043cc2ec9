using System.Runtime.CompilerServices;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Peft.PromptLearning;

/// <summary>
/// A saved prompt-learning adapter folder (PROMPT_TUNING, P_TUNING, PREFIX_TUNING), written by SharpTune or by Python
/// PEFT: adapter_config.json and <c>prompt_embeddings</c> in adapter_model.safetensors, which PEFT fills with the
/// method's output (virtual tokens [n × token_dim], or a prefix [n × num_layers·2·token_dim]). A model applies it
/// unmerged as a model tuner: virtual tokens, or a key/value prefix, before every sequence.
/// </summary>
public sealed class PromptLearningAdapter : IModelAdapter
{
    public const string FileName = "adapter_model.safetensors";
    public const string TensorName = "prompt_embeddings";

    public string Directory { get; }
    public PromptLearningConfig Config { get; }
    /// <summary>prompt_embeddings as saved, [num_virtual_tokens × width].</summary>
    public float[] PromptEmbeddings { get; }

    private PromptLearningAdapter(string directory, PromptLearningConfig config, float[] promptEmbeddings)
    {
        Directory = directory;
        Config = config;
        PromptEmbeddings = promptEmbeddings;
    }

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterReaders()
    {
        foreach (string type in PromptLearningConfig.PeftTypes) PeftAdapterFolders.Register(type, Load, PromptLearningFineTuning.Resume);
    }

    public bool IsPrefix => Config.PeftType == PromptLearningConfig.PrefixTuning;

    /// <summary>The width of a saved row: token_dim for virtual tokens, num_layers·2·token_dim for a prefix.</summary>
    public static int RowWidth(PromptLearningConfig config) =>
        config.PeftType == PromptLearningConfig.PrefixTuning ? config.NumLayers * 2 * config.TokenDim : config.TokenDim;

    public string Describe() => IsPrefix
        ? $"{Config.PeftType}, a {Config.NumVirtualTokens}-token key/value prefix on {Config.NumLayers} layers"
        : $"{Config.PeftType}, {Config.NumVirtualTokens} virtual tokens";

    public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend) => [];

    public string? MergeRefusal =>
        $"a {Config.PeftType} adapter cannot be exported: its virtual tokens or key/value prefix are positions put before every sequence, " +
        "not a change to any weight, so there is nothing to merge into the model; serve it unmerged (chat, api, compare and predict with the adapter)";

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors { get; } = new Dictionary<string, (long[], float[])>();

    /// <summary>The saved output as the tuner a model applies (a copy, so training it leaves this adapter as read).</summary>
    public IModelTuner CreateModelTuner() => CreateTuner();

    internal IPromptLearningTuner CreateTuner()
    {
        var rows = new Parameter(TensorName, [Config.NumVirtualTokens, RowWidth(Config)], (float[])PromptEmbeddings.Clone());
        return IsPrefix ? new PrefixTuner(rows, Config.NumLayers, Config.TokenDim) : new PromptEmbeddingTuner(rows);
    }

    /// <summary>The shapes are checked when the model attaches the tuner (<see cref="Training.Model.DecoderModel.AttachModelTuner"/>).</summary>
    public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName) { }

    /// <exception cref="InvalidDataException">The config or the tensor file is unreadable, or prompt_embeddings is missing or of the wrong shape.</exception>
    public static PromptLearningAdapter Load(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        var config = PromptLearningConfig.Load(directory);
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{directory}: {FileName} is missing (adapter_model.bin adapters are not supported; save with safe_serialization)", path);
        using var file = SafetensorsFile.Open(path);
        if (!file.Contains(TensorName)) throw new InvalidDataException($"{path}: tensor '{TensorName}' is missing");
        var shape = file.Get(TensorName).Shape;
        long width = RowWidth(config);
        if (shape.Length != 2 || shape[0] != config.NumVirtualTokens || shape[1] != width)
            throw new InvalidDataException(
                $"{path}: '{TensorName}' is [{string.Join(", ", shape)}], but adapter_config.json's num_virtual_tokens {config.NumVirtualTokens} and " +
                (config.PeftType == PromptLearningConfig.PrefixTuning ? $"num_layers·2·token_dim {width}" : $"token_dim {width}") + $" make [{config.NumVirtualTokens}, {width}]");
        return new PromptLearningAdapter(directory, config, file.ReadFloat32(TensorName));
    }

    /// <summary>Writes adapter_model.safetensors ({"prompt_embeddings": ...}, float32, metadata {"format": "pt"}) and adapter_config.json.</summary>
    public static void Save(string directory, PromptLearningConfig config, int[] shape, float[] promptEmbeddings)
    {
        System.IO.Directory.CreateDirectory(directory);
        SafetensorsWriter.Write(Path.Combine(directory, FileName), [(TensorName, shape.Select(d => (long)d).ToArray(), promptEmbeddings)],
            DType.F32, SafetensorsWriter.PyTorchMetadata);
        config.Save(directory);
    }
}
