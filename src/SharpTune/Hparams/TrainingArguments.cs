namespace SharpTune.Hparams;

/// <summary>The transformers TrainingArguments SharpTune implements (defaults as in transformers).</summary>
public sealed class TrainingArguments
{
    public string OutputDir { get; set; } = "";
    public bool DoTrain { get; set; } = true;
    public bool DoEval { get; set; }
    public int PerDeviceTrainBatchSize { get; set; } = 8;
    public int PerDeviceEvalBatchSize { get; set; } = 8;
    public int GradientAccumulationSteps { get; set; } = 1;
    public double LearningRate { get; set; } = 5e-5;
    public double NumTrainEpochs { get; set; } = 3.0;
    /// <summary>max_steps: when positive, overrides num_train_epochs.</summary>
    public int MaxSteps { get; set; } = -1;
    /// <summary>linear, cosine, constant, constant_with_warmup, cosine_with_min_lr.</summary>
    public string LrSchedulerType { get; set; } = "linear";
    /// <summary>lr_scheduler_kwargs: min_lr / min_lr_rate for cosine_with_min_lr, num_cycles for cosine.</summary>
    public Dictionary<string, double> LrSchedulerKwargs { get; set; } = [];
    public double WarmupRatio { get; set; }
    public int WarmupSteps { get; set; }
    public double WeightDecay { get; set; }
    public double AdamBeta1 { get; set; } = 0.9;
    public double AdamBeta2 { get; set; } = 0.999;
    public double AdamEpsilon { get; set; } = 1e-8;
    public double MaxGradNorm { get; set; } = 1.0;
    public int LoggingSteps { get; set; } = 500;
    /// <summary>save_strategy: steps, epoch or no.</summary>
    public string SaveStrategy { get; set; } = "steps";
    public int SaveSteps { get; set; } = 500;
    public int? SaveTotalLimit { get; set; }
    /// <summary>eval_strategy (evaluation_strategy): no, steps or epoch.</summary>
    public string EvalStrategy { get; set; } = "no";
    public int? EvalSteps { get; set; }
    public int Seed { get; set; } = 42;
    /// <summary>Recompute each decoder layer's activations in backward (LLaMA-Factory turns this on by default).</summary>
    public bool GradientCheckpointing { get; set; } = true;
    /// <summary>resume_from_checkpoint: a checkpoint folder, "true" for the latest in output_dir, or null.</summary>
    public string? ResumeFromCheckpoint { get; set; }
}
