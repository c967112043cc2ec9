namespace SharpTune.Hparams;

/// <summary>The transformers TrainingArguments SharpTune implements (defaults as in transformers 4.x).</summary>
public sealed class TrainingArguments
{
    /// <summary>The lr_scheduler_type values training runs.</summary>
    public static IReadOnlyList<string> SupportedSchedulers => ConfigKeys.SupportedSchedulers;
    /// <summary>The optim values training runs (their transformers aliases aside).</summary>
    public static IReadOnlyList<string> SupportedOptimizers => ConfigKeys.SupportedOptimizers;

    /// <summary>output_dir: absolute; required when do_train is true.</summary>
    public string OutputDir { get; set; } = "";
    /// <summary>
    /// overwrite_output_dir: when false and output_dir already holds checkpoint-N folders, LLaMA-Factory resumes from
    /// the latest of them (unless resume_from_checkpoint is given).
    /// </summary>
    public bool OverwriteOutputDir { get; set; }
    public bool DoTrain { get; set; }
    /// <summary>do_eval: also true whenever eval_strategy is not "no", as transformers sets it.</summary>
    public bool DoEval { get; set; }
    /// <summary>do_predict: generate for eval_dataset and write generated_predictions.jsonl (needs predict_with_generate).</summary>
    public bool DoPredict { get; set; }
    /// <summary>predict_with_generate: predictions are generated text, with BLEU/ROUGE metrics (Seq2SeqTrainingArguments).</summary>
    public bool PredictWithGenerate { get; set; }
    public int PerDeviceTrainBatchSize { get; set; } = 8;
    public int PerDeviceEvalBatchSize { get; set; } = 8;
    public int GradientAccumulationSteps { get; set; } = 1;
    public double LearningRate { get; set; } = 5e-5;
    public double NumTrainEpochs { get; set; } = 3.0;
    /// <summary>max_steps: when positive, overrides num_train_epochs.</summary>
    public int MaxSteps { get; set; } = -1;
    /// <summary>linear, cosine, constant, constant_with_warmup or cosine_with_min_lr.</summary>
    public string LrSchedulerType { get; set; } = "linear";
    /// <summary>
    /// lr_scheduler_kwargs: num_cycles for cosine; num_cycles and exactly one of min_lr / min_lr_rate for
    /// cosine_with_min_lr; none for the others (checked against lr_scheduler_type).
    /// </summary>
    public Dictionary<string, double> LrSchedulerKwargs { get; set; } = [];
    /// <summary>warmup_ratio: the fraction of the total steps used for warm-up when warmup_steps is 0.</summary>
    public double WarmupRatio { get; set; }
    /// <summary>warmup_steps: when positive, overrides warmup_ratio.</summary>
    public int WarmupSteps { get; set; }
    public double WeightDecay { get; set; }
    /// <summary>optim: adamw_torch, adamw_8bit, paged_adamw_32bit or paged_adamw_8bit (aliases resolved by the config reader).</summary>
    public string Optim { get; set; } = "adamw_torch";
    public double AdamBeta1 { get; set; } = 0.9;
    public double AdamBeta2 { get; set; } = 0.999;
    public double AdamEpsilon { get; set; } = 1e-8;
    /// <summary>max_grad_norm: global-norm clipping threshold; 0 disables clipping.</summary>
    public double MaxGradNorm { get; set; } = 1.0;
    public int LoggingSteps { get; set; } = 500;
    /// <summary>save_strategy: steps, epoch or no.</summary>
    public string SaveStrategy { get; set; } = "steps";
    public int SaveSteps { get; set; } = 500;
    /// <summary>save_total_limit: keep at most this many checkpoints (oldest deleted first); null keeps all.</summary>
    public int? SaveTotalLimit { get; set; }
    /// <summary>eval_strategy (old name evaluation_strategy): no, steps or epoch.</summary>
    public string EvalStrategy { get; set; } = "no";
    /// <summary>eval_steps: with eval_strategy steps and no value given, logging_steps (as transformers defaults it).</summary>
    public int? EvalSteps { get; set; }
    public int Seed { get; set; } = 42;
    /// <summary>
    /// Recompute each decoder layer's activations in backward: true unless disable_gradient_checkpointing is set
    /// (LLaMA-Factory's default), or when transformers' own gradient_checkpointing key asks for it.
    /// </summary>
    public bool GradientCheckpointing { get; set; }
    /// <summary>
    /// bf16: multiply the frozen bf16 weights in bf16 (activations rounded to bf16, fp32 accumulation) where the
    /// machine has a bf16 GEMM; trainable weights, gradients and optimizer state stay fp32.
    /// </summary>
    public bool Bf16 { get; set; }
    /// <summary>resume_from_checkpoint given as a folder: the checkpoint to resume from, absolute.</summary>
    public string? ResumeFromCheckpoint { get; set; }
    /// <summary>resume_from_checkpoint: true — resume from the latest checkpoint-N folder in output_dir.</summary>
    public bool ResumeFromLatestCheckpoint { get; set; }

    /// <summary>transformers' get_warmup_steps: warmup_steps when positive, else ceil(total × warmup_ratio).</summary>
    public int WarmupStepsFor(int totalSteps) =>
        WarmupSteps > 0 ? WarmupSteps : (int)Math.Ceiling(totalSteps * WarmupRatio);
}
