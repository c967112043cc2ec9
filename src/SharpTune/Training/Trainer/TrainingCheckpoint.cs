using System.Globalization;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training.Optim;

namespace SharpTune.Training.Trainer;

/// <summary>
/// The contents of one <c>checkpoint-N</c> folder: the model's own save (adapter or weights, what a user loads),
/// the fp32 trainable parameters and the optimizer's state in safetensors, bit for bit as the optimizer keeps it
/// (fp32 moments, or 8-bit codes and their block scales: what makes resuming exact, whatever dtype the model saves
/// in), the gradients of an unfinished accumulation when there is one, <see cref="ResumeState"/>,
/// and transformers' trainer_state.json. Every file is written atomically.
/// </summary>
internal static class TrainingCheckpoint
{
    public const string ParametersFile = "trainable_parameters.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string GradientsFile = "accumulated_gradients.safetensors";
    private const string StepKey = "step";
    private const string OptimKey = "optim";
    private const string StateFormatKey = "state_format";
    /// <summary>Checkpoints written before the optimizer was a choice hold AdamW's fp32 moments and no optim metadata.</summary>
    private const string FormatWithoutMetadata = "adamw";

    /// <summary>
    /// The model's own save in a checkpoint, one of which must be there: a PEFT adapter (PEFT's file name), a
    /// bottleneck adapter (the adapters library's), or full weights in one file or sharded.
    /// </summary>
    private static readonly string[] ModelFiles = ["adapter_model.safetensors", "adapter.safetensors", "model.safetensors", SafetensorsCheckpoint.IndexFileName];

    /// <summary>The first file a complete checkpoint has and <paramref name="dir"/> lacks, or null when none is missing.</summary>
    public static string? MissingFile(string dir)
    {
        foreach (string file in new[] { ParametersFile, OptimizerFile, ResumeState.FileName, TrainerState.FileName })
            if (!File.Exists(Path.Combine(dir, file)))
                return file;
        return ModelFiles.Any(f => File.Exists(Path.Combine(dir, f))) ? null : string.Join(" or ", ModelFiles);
    }

    public static void Write(string dir, ITrainableModel model, IOptimizer optimizer, ResumeState resume, TrainerState state)
    {
        model.Save(dir);
        var parameters = model.TrainableParameters;
        SafetensorsWriter.Write(Path.Combine(dir, ParametersFile),
            parameters.Select(p => (p.Name, ToLong(p.Shape), p.Data)));
        SafetensorsWriter.Write(Path.Combine(dir, OptimizerFile),
            optimizer.StateTensors.Select(t => (t.Name, t.DType, t.Shape, t.Data)),
            metadata: new Dictionary<string, string>
            {
                [StepKey] = optimizer.Step.ToString(CultureInfo.InvariantCulture),
                [OptimKey] = optimizer.Name,
                [StateFormatKey] = optimizer.StateFormat,
            });
        if (resume.HasAccumulatedGradients)
            SafetensorsWriter.Write(Path.Combine(dir, GradientsFile), parameters.Select(p => (p.Name, ToLong(p.Shape), p.Grad)));
        AtomicFile.WriteText(Path.Combine(dir, ResumeState.FileName), resume.ToJson());
        AtomicFile.WriteText(Path.Combine(dir, TrainerState.FileName), state.ToJson());
        // The weights and parameters were encoded into copies for writing (for full fine-tuning 8 bytes per parameter);
        // left to the collector's own pace those copies piled up checkpoint after checkpoint (two checkpoints of the
        // small preset: peak 1.93 GB instead of 1.40), so the peak would depend on how many checkpoints a run writes.
        GC.Collect();
    }

    /// <summary>Restores parameters (by name) and optimizer state, and returns the saved loop and trainer state.</summary>
    public static (ResumeState Resume, TrainerState State) Restore(string dir, ITrainableModel model, IOptimizer optimizer)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"checkpoint folder {dir} does not exist");
        if (MissingFile(dir) is string missing)
            throw new InvalidDataException($"{dir} is not a complete SharpTune training checkpoint: {missing} is missing");

        var parameters = model.TrainableParameters;
        using (var file = SafetensorsFile.Open(Path.Combine(dir, ParametersFile)))
        {
            CheckNames(dir, ParametersFile, file, parameters.Select(p => p.Name));
            foreach (var p in parameters) ReadExact(file, p.Name, p, p.Data);
        }

        using (var file = SafetensorsFile.Open(Path.Combine(dir, OptimizerFile)))
        {
            string format = file.Metadata.GetValueOrDefault(StateFormatKey, FormatWithoutMetadata);
            string savedOptim = file.Metadata.GetValueOrDefault(OptimKey, OptimizerNames.AdamWTorch);
            if (format != optimizer.StateFormat)
                throw new InvalidDataException($"checkpoint {dir} holds {format} optimizer state (optim {savedOptim}), but this run's optim {optimizer.Name} keeps {optimizer.StateFormat} state: resume with optim {savedOptim}");
            var tensors = optimizer.StateTensors;
            CheckNames(dir, OptimizerFile, file, tensors.Select(t => t.Name));
            if (!file.Metadata.TryGetValue(StepKey, out string? stepText)
                || !long.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out long step))
                throw new InvalidDataException($"{Path.Combine(dir, OptimizerFile)}: the optimizer step is missing from the metadata");
            optimizer.Restore(step, (tensor, destination) =>
            {
                var info = file.Get(tensor.Name);
                if (info.DType != tensor.DType || !info.Shape.SequenceEqual(tensor.Shape))
                    throw new InvalidDataException($"{file.Path}: '{tensor.Name}' is {info.DType} [{string.Join(", ", info.Shape)}], expected {tensor.DType} [{string.Join(", ", tensor.Shape)}]");
                file.Bytes(tensor.Name).CopyTo(destination);
            });
        }

        var resume = ResumeState.Load(Path.Combine(dir, ResumeState.FileName));
        if (resume.HasAccumulatedGradients)
        {
            string gradientsPath = Path.Combine(dir, GradientsFile);
            if (!File.Exists(gradientsPath))
                throw new InvalidDataException($"{dir}: {GradientsFile} is missing (the checkpoint was saved in the middle of a gradient accumulation)");
            using var file = SafetensorsFile.Open(gradientsPath);
            CheckNames(dir, GradientsFile, file, parameters.Select(p => p.Name));
            foreach (var p in parameters) ReadExact(file, p.Name, p, p.Grad);
        }
        return (resume, TrainerState.Load(Path.Combine(dir, TrainerState.FileName)));
    }

    private static void CheckNames(string dir, string fileName, SafetensorsFile file, IEnumerable<string> expected)
    {
        var wanted = expected.ToHashSet(StringComparer.Ordinal);
        foreach (var name in wanted)
            if (!file.Contains(name))
                throw new InvalidDataException($"checkpoint {dir}: {fileName} has no tensor '{name}' (was it saved by another model or fine-tuning method?)");
        foreach (var tensor in file.Tensors)
            if (!wanted.Contains(tensor.Name))
                throw new InvalidDataException($"checkpoint {dir}: {fileName} holds '{tensor.Name}', which this model does not train (was it saved by another model or fine-tuning method?)");
    }

    private static void ReadExact(SafetensorsFile file, string name, Parameter owner, float[] destination)
    {
        var info = file.Get(name);
        if (info.DType != DType.F32 || !info.Shape.SequenceEqual(ToLong(owner.Shape)))
            throw new InvalidDataException($"{file.Path}: '{name}' is {info.DType} [{string.Join(", ", info.Shape)}], expected F32 [{string.Join(", ", owner.Shape)}]");
        file.ReadFloat32(name, destination);
    }

    private static long[] ToLong(int[] shape) => shape.Select(d => (long)d).ToArray();
}
