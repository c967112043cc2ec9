using SharpTune.Hparams;

namespace SharpTune.Training.Trainer;

/// <summary>
/// Where a training run resumes from, in one place: LLaMA-Factory's rule for an output_dir that is not empty (its
/// argument parser's, applied before the run starts) and transformers' resolution of resume_from_checkpoint (true: the
/// latest checkpoint-N in output_dir; a path: that checkpoint), applied when the trainer starts.
/// </summary>
public static class ResumePolicy
{
    /// <summary>
    /// LLaMA-Factory's CHECKPOINT_NAMES: the files that make an output_dir a trained model's; and the adapters
    /// library's adapter.safetensors, what finetuning_type adapter saves.
    /// </summary>
    private static readonly string[] WeightFiles =
        ["adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
            "adapter.safetensors"];

    /// <summary>
    /// LLaMA-Factory's rule for an output_dir that is not empty: without an explicit resume_from_checkpoint it resumes
    /// from the latest complete checkpoint-N there (setting <see cref="TrainingArguments.ResumeFromCheckpoint"/>), and
    /// refuses a folder that holds model weights but no checkpoint (a finished run's output). Anything else (the log of
    /// a run killed before its first checkpoint, other files) is trained into afresh. overwrite_output_dir trains afresh
    /// whatever is there; the trainer removes the earlier checkpoints only once this run has saved its own, so an
    /// interrupted overwrite leaves them to resume from. <paramref name="note"/> hears what was decided.
    /// </summary>
    public static void ApplyToOutputDir(TrainingArguments args, Action<string> note)
    {
        string dir = args.OutputDir;
        if (!Directory.Exists(dir) || !Directory.EnumerateFileSystemEntries(dir).Any()) return;
        if (args.ResumeFromLatestCheckpoint || args.ResumeFromCheckpoint is not null) return;
        if (args.OverwriteOutputDir)
        {
            note(CheckpointFolders.List(dir).Count == 0
                ? $"overwrite_output_dir: training afresh in {dir}"
                : $"overwrite_output_dir: training afresh in {dir}; its checkpoints are removed once this run has saved its first one");
            return;
        }
        if (CheckpointFolders.Latest(dir) is string latest)
        {
            args.ResumeFromCheckpoint = latest;
            note($"output_dir holds checkpoints: resuming from {latest} (set overwrite_output_dir: true to start afresh)");
            return;
        }
        if (WeightFiles.FirstOrDefault(f => File.Exists(Path.Combine(dir, f))) is string weights)
            throw new InvalidOperationException($"output_dir {dir} already holds model weights ({weights}) and no checkpoint to resume from; set overwrite_output_dir: true to train afresh into it, or choose another output_dir");
        if (File.Exists(Path.Combine(dir, TrainerLogFile.FileName)))
            note($"note: output_dir holds the {TrainerLogFile.FileName} of a run that saved no checkpoint: starting afresh");
    }

    /// <summary>The checkpoint the trainer restores: resume_from_checkpoint true means the latest in output_dir, a path that folder.</summary>
    public static string? CheckpointToResume(TrainingArguments args)
    {
        if (args.ResumeFromLatestCheckpoint)
            return CheckpointFolders.Latest(args.OutputDir)
                ?? throw new ArgumentException($"resume_from_checkpoint: there is no checkpoint-N folder in {args.OutputDir} to resume from");
        return string.IsNullOrWhiteSpace(args.ResumeFromCheckpoint) ? null : args.ResumeFromCheckpoint;
    }
}
