using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft.BitFit;

/// <summary>
/// BitFit: every bias term of the decoder trains (Qwen2: the q/k/v projections' biases) and, with
/// bitfit_extra_modules, the named norms' weights; everything else stays frozen. Saves a SharpTune BitFit folder
/// (<see cref="BitFitConfig"/>) of the trained tensors under their Hugging Face names.
/// </summary>
public sealed class BitFitFineTuning : ITrainableModel
{
    public DecoderModel Decoder { get; }
    public IReadOnlyList<string> ExtraModules { get; }
    public IReadOnlyList<ModelTensor> Trained { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount { get; }

    private BitFitFineTuning(DecoderModel decoder, IReadOnlyList<string> extraModules)
    {
        Decoder = decoder;
        ExtraModules = extraModules;
        var trained = new List<ModelTensor>();
        foreach (var t in decoder.Tensors)
        {
            bool extra = extraModules.Any(m => PeftConfigFile.ModuleMatches(ModulePathOf(t.Name), m));
            if (!t.Name.EndsWith(".bias", StringComparison.Ordinal) && !extra) continue;
            if (extra && t.Shape.Length != 1)
                throw new ArgumentException($"bitfit_extra_modules: '{t.Name}' is a matrix; BitFit trains biases and norm weights only (train matrices with lora's additional_target)");
            trained.Add(t);
        }
        foreach (string module in extraModules)
            if (!decoder.Tensors.Any(t => PeftConfigFile.ModuleMatches(ModulePathOf(t.Name), module)))
                throw new ArgumentException($"bitfit_extra_modules: module '{module}' is not found in the model (e.g. input_layernorm, post_attention_layernorm, norm)");
        if (trained.Count == 0)
            throw new ArgumentException($"finetuning_type bitfit: the model {decoder.Directory} has no bias terms; name norms to train with bitfit_extra_modules");
        Trained = trained;
        TrainableParameters = trained.Select(t => t.MakeTrainable()).ToArray();
        // Nothing is added: PEFT's count of all parameters is the model's own.
        TotalParameterCount = decoder.Tensors.Sum(t => (long)t.Length);
    }

    public static BitFitFineTuning CreateNew(DecoderModel decoder, FinetuningArguments args) => new(decoder, args.BitFitExtraModules);

    /// <summary>Continues training a saved BitFit folder: the same tensors trainable, starting from the saved values.</summary>
    public static BitFitFineTuning Resume(DecoderModel decoder, string adapterDirectory)
    {
        var adapter = BitFitAdapter.Load(adapterDirectory);
        var model = new BitFitFineTuning(decoder, adapter.Config.ExtraModules);
        var names = model.Trained.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (string name in adapter.ReplacedTensors.Keys)
            if (!names.Contains(name))
                throw new InvalidDataException($"{adapterDirectory}: tensor '{name}' is neither a bias nor in bitfit_extra_modules of this model");
        foreach (var t in model.Trained)
        {
            if (!adapter.ReplacedTensors.TryGetValue(t.Name, out var saved))
                throw new InvalidDataException($"{adapterDirectory}: '{t.Name}' is missing from {BitFitAdapter.FileName}");
            if (saved.Data.Length != t.Length)
                throw new InvalidDataException($"{adapterDirectory}: '{t.Name}' holds {saved.Data.Length} values, the model's has {t.Length}");
            saved.Data.CopyTo(t.Data, 0);
        }
        return model;
    }

    private static string ModulePathOf(string tensorName) => tensorName[..tensorName.LastIndexOf('.')];

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>adapter_config.json (peft_type BITFIT) + adapter_model.safetensors: the trained tensors, float32, Hugging Face names.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        SafetensorsWriter.Write(Path.Combine(directory, BitFitAdapter.FileName),
            Trained.Select(t => (t.Name, t.Shape.Select(d => (long)d).ToArray(), t.Data)).ToList(), Engine.DType.F32, SafetensorsWriter.PyTorchMetadata);
        new BitFitConfig { ExtraModules = ExtraModules, BaseModelNameOrPath = Decoder.BaseModelName }.Save(directory);
    }

    public void Dispose() => Decoder.Dispose();
}
