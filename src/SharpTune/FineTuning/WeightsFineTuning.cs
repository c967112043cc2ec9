using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.FineTuning;

/// <summary>
/// Full and freeze fine-tuning: a subset of the decoder's own weights is trained (all of them, or LLaMA-Factory's
/// freeze selection) and the result is saved as a Hugging Face model folder in the base checkpoint's dtype.
/// </summary>
public sealed class WeightsFineTuning : ITrainableModel
{
    /// <summary>transformers 4.40's default max_shard_size "5GB" (decimal gigabytes).</summary>
    public const long MaxShardBytes = 5_000_000_000;

    public DecoderModel Decoder { get; }
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public long TotalParameterCount { get; }

    private WeightsFineTuning(DecoderModel decoder)
    {
        Decoder = decoder;
        TrainableParameters = decoder.Tensors.Where(t => t.IsTrainable).Select(t => t.Parameter!).ToArray();
        TotalParameterCount = decoder.Tensors.Sum(t => t.Length);
    }

    /// <summary>Every parameter trainable.</summary>
    public static WeightsFineTuning Full(DecoderModel decoder)
    {
        foreach (var t in decoder.Tensors) t.MakeTrainable();
        return new WeightsFineTuning(decoder);
    }

    /// <summary>LLaMA-Factory's freeze tuning (see <see cref="FreezeSelection"/>).</summary>
    public static WeightsFineTuning Freeze(DecoderModel decoder, FinetuningArguments args)
    {
        var names = FreezeSelection.TrainableNames(decoder.Tensors.Select(t => t.Name).ToArray(), decoder.Config.NumLayers, args);
        foreach (var t in decoder.Tensors)
            if (names.Contains(t.Name)) t.MakeTrainable();
        return new WeightsFineTuning(decoder);
    }

    public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random) => Decoder.ForwardBackward(batch, gradScale, random);

    public LossResult Evaluate(TrainingBatch batch) => Decoder.Evaluate(batch);

    /// <summary>
    /// model.safetensors (sharded above 5 GB) in the base dtype, plus the base's config.json and generation_config.json.
    /// A stored buffer the decoder never reads (ChatGLM's inv_freq) is copied from the base as it is, after the
    /// embedding where its state_dict puts it, so the saved folder holds every tensor the base did.
    /// </summary>
    public void Save(string directory)
    {
        var dtype = Decoder.StoredDType;
        var tensors = Decoder.Tensors.Select(t => (t.Name, dtype, t.Shape.Select(d => (long)d).ToArray(), t.Encode(dtype))).ToList();
        string? buffer = Decoder.Config.Description.InverseFrequencyBuffer;
        using var checkpoint = buffer is null ? null : SafetensorsCheckpoint.OpenDirectory(Decoder.Directory);
        if (checkpoint is not null && checkpoint.Contains(buffer!))
        {
            var info = checkpoint.Get(buffer!);
            tensors.Insert(1, (buffer!, info.DType, info.Shape, checkpoint.Bytes(buffer!).ToArray()));
        }
        SafetensorsWriter.WriteSharded(directory, tensors, MaxShardBytes);
        CopyFromBase(ModelFolder.ConfigPath(Decoder.Directory), ModelFolder.ConfigPath(directory));
        CopyFromBase(ModelFolder.GenerationConfigPath(Decoder.Directory), ModelFolder.GenerationConfigPath(directory));
    }

    private static void CopyFromBase(string source, string destination)
    {
        if (!File.Exists(source)) return;
        byte[] bytes = File.ReadAllBytes(source);
        IO.AtomicFile.Write(destination, s => s.Write(bytes));
    }

    public void Dispose() => Decoder.Dispose();
}
