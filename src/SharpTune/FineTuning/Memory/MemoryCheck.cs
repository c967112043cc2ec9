using System.Text;
using SharpTune.Hparams;
using SharpTune.Quantization;
using SharpTune.Training.Optim;

namespace SharpTune.FineTuning.Memory;

/// <summary>A change to the config and the estimate with it.</summary>
public sealed record MemoryOption(string Overrides, MemoryEstimate Estimate);

/// <summary>
/// The pre-flight verdict: the estimate against the memory available and, when it does not fit, the single config
/// changes that would (each re-estimated), or all of them together when none does alone.
/// </summary>
public sealed class MemoryCheck
{
    public required MemoryEstimate Estimate { get; init; }
    /// <summary>Null where the available memory cannot be read (not Linux): then nothing is refused.</summary>
    public required SystemMemory.Available? Available { get; init; }
    public required IReadOnlyList<MemoryOption> OptionsThatFit { get; init; }

    public bool Fits => Available is null || Estimate.TotalBytes <= Available.Bytes;

    /// <summary>Estimates the run a config describes against this machine's available memory.</summary>
    public static MemoryCheck Run(SftConfig cfg, SystemMemory.Available? available)
    {
        var setup = TrainingMemorySetup.From(cfg);
        string modelDir = cfg.Model.ModelNameOrPath;
        var estimate = MemoryEstimator.ForModelFolder(modelDir, setup);
        bool fits = available is null || estimate.TotalBytes <= available.Bytes;
        return new MemoryCheck
        {
            Estimate = estimate,
            Available = available,
            OptionsThatFit = fits ? [] : Options(modelDir, setup, available!.Bytes),
        };
    }

    /// <summary>
    /// LoRA instead of full/freeze, 4-bit QLoRA, gradient checkpointing, 8-bit AdamW, the largest halved cutoff_len,
    /// the largest halved batch (gradient accumulation raised to keep the effective batch): those that fit alone, or
    /// every applicable change together when none does.
    /// </summary>
    private static List<MemoryOption> Options(string modelDir, TrainingMemorySetup setup, long available)
    {
        var changes = new List<(string Overrides, TrainingMemorySetup Setup)>();
        bool lora = setup.Finetuning.FinetuningType == FinetuningType.Lora;
        var asLora = lora ? setup : setup with { Finetuning = AsLora(setup.Finetuning) };
        if (!lora) changes.Add(("finetuning_type=lora", asLora));
        if (setup.Quantization is null && setup.AdapterDirectories.Count <= 1)
            changes.Add(((lora ? "" : "finetuning_type=lora ") + "quantization_bit=4", asLora with { Quantization = new QuantizationOptions(4) }));
        if (!setup.GradientCheckpointing) changes.Add(("disable_gradient_checkpointing=false", setup with { GradientCheckpointing = true }));
        string? eightBit = setup.Optim switch
        {
            OptimizerNames.AdamWTorch => OptimizerNames.AdamW8Bit,
            OptimizerNames.PagedAdamW32Bit => OptimizerNames.PagedAdamW8Bit,
            _ => null,
        };
        if (eightBit is not null) changes.Add(($"optim={eightBit}", setup with { Optim = eightBit }));

        var fitting = new List<MemoryOption>();
        foreach (var (overrides, changed) in changes)
        {
            var estimate = MemoryEstimator.ForModelFolder(modelDir, changed);
            if (estimate.TotalBytes <= available) fitting.Add(new MemoryOption(overrides, estimate));
        }
        for (int cutoff = setup.CutoffLen / 2; cutoff >= 16; cutoff /= 2)
        {
            var estimate = MemoryEstimator.ForModelFolder(modelDir, setup with { CutoffLen = cutoff });
            if (estimate.TotalBytes > available) continue;
            fitting.Add(new MemoryOption($"cutoff_len={cutoff}", estimate));
            break;
        }
        for (int batch = setup.BufferBatch / 2; batch >= 1; batch /= 2)
        {
            // Evaluation batches share the step buffers, so a larger eval batch is lowered with the training batch;
            // a lowered training batch raises gradient_accumulation_steps to keep the effective batch.
            int train = Math.Min(setup.BatchSize, batch);
            var estimate = MemoryEstimator.ForModelFolder(modelDir, setup with { BatchSize = train, EvalBatchSize = Math.Min(setup.EvalBatchSize, batch) });
            if (estimate.TotalBytes > available) continue;
            var overrides = new List<string>();
            if (train < setup.BatchSize)
                overrides.Add($"per_device_train_batch_size={train} gradient_accumulation_steps={setup.GradientAccumulationSteps * ((setup.BatchSize + train - 1) / train)}");
            if (setup.EvalBatchSize > batch) overrides.Add($"per_device_eval_batch_size={batch}");
            fitting.Add(new MemoryOption(string.Join(" ", overrides), estimate));
            break;
        }
        if (fitting.Count == 0 && changes.Count > 1)
        {
            var all = asLora with
            {
                Quantization = setup.Quantization ?? (setup.AdapterDirectories.Count <= 1 ? new QuantizationOptions(4) : null),
                GradientCheckpointing = true,
                Optim = eightBit ?? setup.Optim,
            };
            var estimate = MemoryEstimator.ForModelFolder(modelDir, all);
            if (estimate.TotalBytes <= available)
                fitting.Add(new MemoryOption(string.Join(" ", changes.SelectMany(c => c.Overrides.Split(' ')).Distinct()), estimate));
        }
        return fitting;
    }

    /// <summary>The config's LoRA settings (lora_rank, lora_target, ...) with finetuning_type lora.</summary>
    private static FinetuningArguments AsLora(FinetuningArguments args) => new()
    {
        Stage = args.Stage,
        FinetuningType = FinetuningType.Lora,
        LoraRank = args.LoraRank,
        LoraAlpha = args.LoraAlpha,
        LoraDropout = args.LoraDropout,
        LoraTarget = args.LoraTarget,
        AdditionalTarget = args.AdditionalTarget,
        UseRslora = args.UseRslora,
    };

    /// <summary>The table `sharptune estimate` prints and `train` shows before refusing: a row per component, total, available, verdict, options.</summary>
    public string Format()
    {
        var rows = Estimate.Components.Select(c => (c.Name, MemoryEstimator.FormatBytes(c.Bytes), c.Note)).ToList();
        rows.Add(("total (estimated peak)", MemoryEstimator.FormatBytes(Estimate.TotalBytes), ""));
        rows.Add(Available is null
            ? ("available", "unknown", "no /proc/meminfo or cgroup limit to read")
            : ("available", MemoryEstimator.FormatBytes(Available.Bytes), Available.Source));
        int nameWidth = rows.Max(r => r.Item1.Length), sizeWidth = rows.Max(r => r.Item2.Length);
        var text = new StringBuilder();
        foreach (var (name, size, note) in rows)
        {
            if (name.StartsWith("total", StringComparison.Ordinal)) text.AppendLine(new string('-', nameWidth + sizeWidth + 2));
            text.AppendLine($"{name.PadRight(nameWidth)}  {size.PadLeft(sizeWidth)}{(note.Length > 0 ? "  " + note : "")}".TrimEnd());
        }
        text.AppendLine(Available is null
            ? "verdict: unknown (available memory cannot be read here)"
            : Fits
                ? $"verdict: fits ({100.0 * Estimate.TotalBytes / Math.Max(1, Available.Bytes):F0}% of available)"
                : $"verdict: does not fit ({MemoryEstimator.FormatBytes(Estimate.TotalBytes - Available.Bytes)} over)");
        if (!Fits)
        {
            if (OptionsThatFit.Count == 0) text.AppendLine("no change tried here fits (LoRA, quantization_bit=4, gradient checkpointing, adamw_8bit, smaller cutoff_len or batch)");
            else text.AppendLine("options that fit:");
            foreach (var option in OptionsThatFit)
                text.AppendLine($"  {option.Overrides}: {MemoryEstimator.FormatBytes(option.Estimate.TotalBytes)}");
        }
        return text.ToString();
    }
}
