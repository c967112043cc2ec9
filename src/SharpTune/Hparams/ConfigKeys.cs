using SharpTune.IO;
using SharpTune.Quantization;
using SharpTune.Templates;

namespace SharpTune.Hparams;

/// <summary>What SharpTune does with a LLaMA-Factory config key.</summary>
internal enum KeyStatus
{
    /// <summary>Read into the argument classes.</summary>
    Supported,
    /// <summary>Accepted without effect; a value other than the inert one adds a note to <see cref="SftConfig.Notes"/>.</summary>
    Ignored,
    /// <summary>A feature SharpTune does not have: any value other than the inert one stops with the reason.</summary>
    Unsupported,
}

/// <summary>
/// One registered key. <paramref name="Apply"/> reads and stores a supported key (its reader fixes the type);
/// <paramref name="IsInert"/> recognises the value that has no effect in LLaMA-Factory either (its default or "off");
/// <paramref name="AliasOf"/> names the key an old spelling stands for.
/// </summary>
internal sealed record ConfigKey(
    string Name,
    KeyStatus Status,
    Action<SftConfig, ConfigValue>? Apply = null,
    string? Reason = null,
    Func<ConfigValue, bool>? IsInert = null,
    string? AliasOf = null);

/// <summary>The registry of every LLaMA-Factory / transformers key SharpTune knows, one row per key.</summary>
internal static class ConfigKeys
{
    internal static readonly string[] SupportedSchedulers = ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr"];
    private static readonly string[] OtherTransformersSchedulers =
        ["cosine_with_restarts", "polynomial", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_warmup_with_min_lr", "warmup_stable_decay"];

    /// <summary>The optim values SharpTune implements (Training/Optim/OptimizerNames).</summary>
    internal static readonly string[] SupportedOptimizers = ["adamw_torch", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit"];

    /// <summary>transformers' other names for those optimizers.</summary>
    internal static readonly IReadOnlyDictionary<string, string> OptimizerAliases = new Dictionary<string, string>
    {
        // torch.optim.AdamW(fused=True): one kernel for all parameters, the same update.
        ["adamw_torch_fused"] = "adamw_torch",
        // transformers' own AdamW: the same algorithm with weight decay after the step (ReadOptim adds a note).
        ["adamw_hf"] = "adamw_torch",
        // transformers builds bnb.optim.AdamW(optim_bits=8) for both names.
        ["adamw_bnb_8bit"] = "adamw_8bit",
    };

    private const string MultimodalReason = "SharpTune trains text-only models; image, video and audio inputs are not available";
    private const string RayReason = "Ray distributed training is not available; SharpTune trains in one process";
    private const string NoHubReason = "SharpTune does not upload to the Hugging Face Hub";
    private const string HubDownloadReason = "SharpTune downloads into the Hugging Face cache of HF_HUB_CACHE or HF_HOME with the token of HF_TOKEN or the token file, as huggingface_hub does";
    private const string ModelScopeTokenReason = "with USE_MODELSCOPE_HUB=1 SharpTune downloads into the ModelScope cache of MODELSCOPE_CACHE with the token of MODELSCOPE_API_TOKEN";
    private const string OtherHubReason = "SharpTune downloads from the Hugging Face Hub and ModelScope only (Modelers is not available)";
    private const string OneProcessReason = "SharpTune trains on CPUs, each data-parallel process (mpirun, docs/distributed.md) holding the whole model";
    private const string MegatronReason = "it only applies to the Megatron training backends (USE_MCA, USE_MEGATRON_BRIDGE), which split a model across GPUs; " + OneProcessReason;
    private const string NoTorchReason = "SharpTune has no PyTorch";

    private static string PeftReason(string method) => $"{method} is not available yet (planned: the PEFT family)";

    /// <summary>A reason for the settings of a feature that is off unless <paramref name="switchKey"/> turns it on.</summary>
    private static string OnlyWith(string switchKey, string feature) => $"it only applies with {switchKey}: {feature}";

    /// <summary>
    /// RLHFArguments, the settings of LLaMA-Factory's alignment stages, and the stages whose trainers read each; a
    /// config of another stage that sets one gets a note that it has no effect there.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, string[]> AlignmentKeyStages = new Dictionary<string, string[]>
    {
        ["pref_beta"] = ["dpo", "kto"],
        ["pref_ftx"] = ["dpo", "kto"],
        ["pref_bco_weight"] = ["dpo"],
        ["pref_loss"] = ["dpo"],
        ["dpo_label_smoothing"] = ["dpo"],
        ["simpo_gamma"] = ["dpo"],
        ["kto_chosen_weight"] = ["kto"],
        ["kto_rejected_weight"] = ["kto"],
        ["ref_model"] = ["dpo", "kto", "ppo"],
        ["ref_model_adapters"] = ["dpo", "kto", "ppo"],
        ["ref_model_quantization_bit"] = ["dpo", "kto", "ppo"],
        ["reward_model"] = ["ppo"],
        ["reward_model_adapters"] = ["ppo"],
        ["reward_model_quantization_bit"] = ["ppo"],
        ["reward_model_type"] = ["ppo"],
        ["ppo_buffer_size"] = ["ppo"],
        ["ppo_epochs"] = ["ppo"],
        ["ppo_score_norm"] = ["ppo"],
        ["ppo_target"] = ["ppo"],
        ["ppo_whiten_rewards"] = ["ppo"],
    };

    /// <summary>MegatronBridgeArguments (read by LLaMA-Factory when USE_MEGATRON_BRIDGE=1).</summary>
    private static readonly string[] MegatronBridgeKeys =
    [
        "tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size", "context_parallel_size",
        "virtual_pipeline_model_parallel_size", "sequence_parallel", "recompute_granularity", "recompute_method", "recompute_num_layers",
        "account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split", "bias_activation_fusion", "apply_rope_fusion",
        "masked_softmax_fusion", "cross_entropy_loss_fusion", "moe_grouped_gemm", "moe_token_dispatcher_type", "calculate_per_token_loss",
        "use_distributed_optimizer", "overlap_param_gather", "overlap_grad_reduce", "use_packed_sequences", "mixed_precision",
        "megatron_pretrained_checkpoint", "export_hf_on_finish", "extra_config",
    ];

    private static readonly ConfigKey[] Table =
    [
        // model
        Supported("model_name_or_path", (c, v) => c.Model.ModelNameOrPath = v.NullableText() ?? ""),
        Supported("adapter_name_or_path", (c, v) => c.Model.AdapterNameOrPath = v.Names()),
        Supported("disable_gradient_checkpointing", (c, v) => c.Model.DisableGradientCheckpointing = v.Bool()),
        Supported("quantization_bit", (c, v) => c.Model.QuantizationBit = QuantizationBit(v)),
        Supported("quantization_method", (c, v) => QuantizationMethod(v)),
        Supported("quantization_type", (c, v) => c.Model.QuantizationType = v.Choice(["nf4", "fp4"], []) == "fp4" ? FourBitType.Fp4 : FourBitType.Nf4),
        Supported("double_quantization", (c, v) => c.Model.DoubleQuantization = v.Bool()),

        // data
        Supported("template", (c, v) => c.Data.Template = KnownTemplate(v)),
        Supported("dataset", (c, v) => c.Data.Dataset = v.Names()),
        Supported("eval_dataset", (c, v) => c.Data.EvalDataset = v.Names()),
        Supported("dataset_dir", (c, v) => c.Data.DatasetDir = v.Text()),
        Supported("cutoff_len", (c, v) => c.Data.CutoffLen = v.Int(min: 1)),
        Supported("train_on_prompt", (c, v) => c.Data.TrainOnPrompt = v.Bool()),
        Supported("mask_history", (c, v) => c.Data.MaskHistory = v.Bool()),
        Supported("max_samples", (c, v) => c.Data.MaxSamples = v.NullableInt(min: 1)),
        Supported("val_size", (c, v) => c.Data.ValSize = v.Double(min: 0)),
        Supported("packing", (c, v) => c.Data.Packing = !v.IsNull && v.Bool()),
        Supported("neat_packing", (c, v) => c.Data.NeatPacking = !v.IsNull && v.Bool()),
        Supported("default_system", (c, v) => c.Data.DefaultSystem = v.NullableText()),
        Supported("tool_format", (c, v) => c.Data.ToolFormat = v.NullableText()),
        Supported("skip_invalid_records", (c, v) => c.Data.SkipInvalidRecords = v.Bool()),

        // method
        Supported("stage", (c, v) => c.Finetuning.Stage = Stage(v)),
        Supported("finetuning_type", (c, v) => c.Finetuning.FinetuningType = v.Choice([.. FinetuningArguments.FinetuningTypeNames], ["oft"], new Dictionary<string, string> { ["oft"] = "the PEFT family" }) switch
        {
            "lora" => FinetuningType.Lora,
            "full" => FinetuningType.Full,
            "ia3" => FinetuningType.Ia3,
            "bitfit" => FinetuningType.BitFit,
            "adapter" => FinetuningType.Adapter,
            "prompt_tuning" => FinetuningType.PromptTuning,
            "p_tuning" => FinetuningType.PTuning,
            "prefix_tuning" => FinetuningType.PrefixTuning,
            _ => FinetuningType.Freeze,
        }),
        Supported("lora_rank", (c, v) => c.Finetuning.LoraRank = v.Int(min: 1, max: FinetuningArguments.MaxLoraRank)),
        Supported("lora_alpha", (c, v) => c.Finetuning.LoraAlpha = v.NullableInt(min: 0)),
        Supported("lora_dropout", (c, v) => c.Finetuning.LoraDropout = v.Double(min: 0, max: 1, maxExclusive: true)),
        Supported("lora_target", (c, v) => c.Finetuning.LoraTarget = v.Names()),
        Supported("additional_target", (c, v) => c.Finetuning.AdditionalTarget = v.Names()),
        Supported("use_rslora", (c, v) => c.Finetuning.UseRslora = v.Bool()),
        Supported("ia3_target", (c, v) => c.Finetuning.Ia3Target = v.Names()),
        Supported("ia3_feedforward", (c, v) => c.Finetuning.Ia3Feedforward = v.Names()),
        Supported("bitfit_extra_modules", (c, v) => c.Finetuning.BitFitExtraModules = v.Names()),
        Supported("adapter_reduction_factor", (c, v) => c.Finetuning.AdapterReductionFactor = v.Double(min: 1)),
        Supported("adapter_non_linearity", (c, v) => c.Finetuning.AdapterNonLinearity = v.Choice(["swish", "relu"], [])),
        Supported("use_dora", (c, v) => c.Finetuning.UseDora = v.Bool()),
        Supported("create_new_adapter", (c, v) => c.Finetuning.CreateNewAdapter = v.Bool()),
        Supported("pissa_init", (c, v) => c.Finetuning.PissaInit = v.Bool()),
        Supported("pissa_iter", (c, v) => c.Finetuning.PissaIter = v.Int(min: -1)),
        Supported("pissa_convert", (c, v) => c.Finetuning.PissaConvert = v.Bool()),
        Supported("init_lora_weights", (c, v) => c.Finetuning.InitLoraWeights = v.IsTrue ? null
            : v.Text() is var init && (init is "olora" or "pissa" || System.Text.RegularExpressions.Regex.IsMatch(init, "^pissa_niter_[0-9]+$")) ? init
            : throw v.Error("expected true, olora, pissa or pissa_niter_N (the initialisations SharpTune computes)")),
        Supported("loraplus_lr_ratio", (c, v) => c.Finetuning.LoraplusLrRatio = v.IsNull ? null : v.Double(min: 0) is > 0 and var ratio ? ratio : throw v.Error("must be positive")),
        Supported("loraplus_lr_embedding", (c, v) => c.Finetuning.LoraplusLrEmbedding = v.Double(min: 0)),
        Supported("freeze_trainable_layers", (c, v) => c.Finetuning.FreezeTrainableLayers = v.Int() is not 0 and var n ? n : throw v.Error("must not be 0")),
        Supported("freeze_trainable_modules", (c, v) => c.Finetuning.FreezeTrainableModules = v.Names()),
        Supported("freeze_extra_modules", (c, v) => c.Finetuning.FreezeExtraModules = v.Names()),
        // PEFT's prompt-learning fields (LLaMA-Factory does not train these methods), read by finetuning_type prompt_tuning, p_tuning, prefix_tuning
        Supported("num_virtual_tokens", (c, v) => c.Finetuning.NumVirtualTokens = v.Int(min: 1)),
        Supported("prompt_tuning_init", (c, v) => c.Finetuning.PromptTuningInit = v.Choice(["RANDOM", "TEXT", "SAMPLE_VOCAB"], [])),
        Supported("prompt_tuning_init_text", (c, v) => c.Finetuning.PromptTuningInitText = v.NullableText()),
        Supported("encoder_reparameterization_type", (c, v) => c.Finetuning.EncoderReparameterizationType = v.Choice(["MLP", "LSTM"], [])),
        Supported("encoder_hidden_size", (c, v) => c.Finetuning.EncoderHiddenSize = v.NullableInt(min: 1)),
        Supported("encoder_num_layers", (c, v) => c.Finetuning.EncoderNumLayers = v.Int(min: 1)),
        Supported("encoder_dropout", (c, v) => c.Finetuning.EncoderDropout = v.Double(min: 0, max: 1, maxExclusive: true)),
        Supported("prefix_projection", (c, v) => c.Finetuning.PrefixProjection = v.Bool()),
        Supported("plot_loss", (c, v) => c.Finetuning.PlotLoss = v.Bool()),

        // alignment stages (RLHFArguments)
        Supported("pref_beta", (c, v) => c.Finetuning.PrefBeta = Positive(v)),
        Supported("pref_ftx", (c, v) => c.Finetuning.PrefFtx = v.Double(min: 0)),
        Supported("pref_bco_weight", (c, v) => c.Finetuning.PrefBcoWeight = v.Double(min: 0)),
        Supported("pref_loss", (c, v) => c.Finetuning.PrefLoss = v.Choice(FinetuningArguments.PrefLosses, ["kto_pair"])),
        Supported("dpo_label_smoothing", (c, v) => c.Finetuning.DpoLabelSmoothing = v.Double(min: 0, max: 0.5)),
        Supported("simpo_gamma", (c, v) => c.Finetuning.SimpoGamma = v.Double()),
        Supported("kto_chosen_weight", (c, v) => c.Finetuning.KtoChosenWeight = v.Double(min: 0)),
        Supported("kto_rejected_weight", (c, v) => c.Finetuning.KtoRejectedWeight = v.Double(min: 0)),
        Supported("ref_model", (c, v) => c.Finetuning.RefModel = v.NullableText()),
        Supported("ref_model_adapters", (c, v) => c.Finetuning.RefModelAdapters = v.Names()),
        Supported("ref_model_quantization_bit", (c, v) => c.Finetuning.RefModelQuantizationBit = QuantizationBit(v)),
        Supported("reward_model", (c, v) => c.Finetuning.RewardModel = v.NullableText()),
        Supported("reward_model_adapters", (c, v) => c.Finetuning.RewardModelAdapters = v.Names()),
        Supported("reward_model_quantization_bit", (c, v) => c.Finetuning.RewardModelQuantizationBit = QuantizationBit(v)),
        Supported("reward_model_type", (c, v) => c.Finetuning.RewardModelType = v.Choice(["lora", "full", "api"], [])),
        Supported("ppo_buffer_size", (c, v) => c.Finetuning.PpoBufferSize = v.Int(min: 1)),
        Supported("ppo_epochs", (c, v) => c.Finetuning.PpoEpochs = v.Int(min: 1)),
        Supported("ppo_score_norm", (c, v) => c.Finetuning.PpoScoreNorm = v.Bool()),
        Supported("ppo_target", (c, v) => c.Finetuning.PpoTarget = v.Double(min: 0)),
        Supported("ppo_whiten_rewards", (c, v) => c.Finetuning.PpoWhitenRewards = v.Bool()),
        Unsupported("ld_alpha", "LD-DPO (the weighting of verbose answer tokens) is not available", v => v.IsNull),

        // generation (prediction runs and serving)
        Supported("do_sample", (c, v) => c.Generating.DoSample = v.Bool()),
        Supported("temperature", (c, v) => c.Generating.Temperature = v.Double(min: 0)),
        Supported("top_p", (c, v) => c.Generating.TopP = TopP(v)),
        Supported("top_k", (c, v) => c.Generating.TopK = v.Int(min: 0)),
        Supported("max_new_tokens", (c, v) => c.Generating.MaxNewTokens = v.Int(min: 1)),
        // transformers' RepetitionPenaltyLogitsProcessor takes a strictly positive float.
        Supported("repetition_penalty", (c, v) => c.Generating.RepetitionPenalty = Positive(v)),
        Supported("skip_special_tokens", (c, v) => c.Generating.SkipSpecialTokens = v.Bool()),

        // training
        Supported("output_dir", (c, v) => c.Training.OutputDir = v.NullableText() ?? ""),
        Supported("overwrite_output_dir", (c, v) => c.Training.OverwriteOutputDir = v.Bool()),
        Supported("do_train", (c, v) => c.Training.DoTrain = v.Bool()),
        Supported("do_eval", (c, v) => c.Training.DoEval = v.Bool()),
        Supported("do_predict", (c, v) => c.Training.DoPredict = v.Bool()),
        Supported("predict_with_generate", (c, v) => c.Training.PredictWithGenerate = v.Bool()),
        Supported("per_device_train_batch_size", (c, v) => c.Training.PerDeviceTrainBatchSize = v.Int(min: 1)),
        Supported("per_device_eval_batch_size", (c, v) => c.Training.PerDeviceEvalBatchSize = v.Int(min: 1)),
        Supported("gradient_accumulation_steps", (c, v) => c.Training.GradientAccumulationSteps = v.Int(min: 1)),
        Supported("learning_rate", (c, v) => c.Training.LearningRate = v.Double(min: 0)),
        Supported("num_train_epochs", (c, v) => c.Training.NumTrainEpochs = v.Double(min: 0)),
        Supported("max_steps", (c, v) => c.Training.MaxSteps = v.Int(min: -1)),
        Supported("lr_scheduler_type", (c, v) => c.Training.LrSchedulerType = v.Choice(SupportedSchedulers, OtherTransformersSchedulers)),
        Supported("lr_scheduler_kwargs", (c, v) => c.Training.LrSchedulerKwargs = v.NumberMap()),
        Supported("warmup_ratio", (c, v) => c.Training.WarmupRatio = v.Double(min: 0, max: 1)),
        Supported("warmup_steps", (c, v) => c.Training.WarmupSteps = v.Int(min: 0)),
        Supported("weight_decay", (c, v) => c.Training.WeightDecay = v.Double(min: 0)),
        Supported("adam_beta1", (c, v) => c.Training.AdamBeta1 = v.Double(min: 0, max: 1, maxExclusive: true)),
        Supported("adam_beta2", (c, v) => c.Training.AdamBeta2 = v.Double(min: 0, max: 1, maxExclusive: true)),
        Supported("adam_epsilon", (c, v) => c.Training.AdamEpsilon = v.Double(min: 0)),
        Supported("optim", ReadOptim),
        Supported("max_grad_norm", (c, v) => c.Training.MaxGradNorm = v.Double(min: 0)),
        Supported("logging_steps", (c, v) => c.Training.LoggingSteps = v.Steps()),
        Supported("save_strategy", (c, v) => c.Training.SaveStrategy = v.Choice(["steps", "epoch", "no"], ["best"])),
        Supported("save_steps", (c, v) => c.Training.SaveSteps = v.Steps()),
        Supported("save_total_limit", (c, v) => c.Training.SaveTotalLimit = v.NullableInt(min: 1)),
        Supported("eval_strategy", (c, v) => c.Training.EvalStrategy = v.Choice(["no", "steps", "epoch"], [])),
        Alias("evaluation_strategy", "eval_strategy"),
        Supported("eval_steps", (c, v) => c.Training.EvalSteps = v.NullableSteps()),
        Supported("seed", (c, v) => c.Training.Seed = v.Int(min: 0)),

        // evaluation (benchmarks: sharptune eval; its seed is the seed above, as one YAML key fills both in LLaMA-Factory)
        Supported("task", (c, v) => c.Evaluation.Task = v.NullableText()),
        Supported("task_dir", (c, v) => c.Evaluation.TaskDir = v.Text()),
        Supported("batch_size", (c, v) => c.Evaluation.BatchSize = v.Int(min: 1)),
        Supported("lang", (c, v) => c.Evaluation.Lang = v.Choice(["en", "zh"], [])),
        Supported("n_shot", (c, v) => c.Evaluation.NShot = v.Int(min: 0)),
        Supported("save_dir", (c, v) => c.Evaluation.SaveDir = v.NullableText()),
        Ignored("download_mode", "evaluation sets are read from task_dir, never downloaded", v => v.IsNull || v.Is("reuse_dataset_if_exists")),
        Supported("gradient_checkpointing", (c, v) => c.Training.GradientCheckpointing = v.Bool()),
        Supported("bf16", (c, v) => c.Training.Bf16 = v.Bool()),
        Supported("resume_from_checkpoint", ReadResumeFromCheckpoint),

        // export
        Supported("export_dir", (c, v) => c.Export.ExportDir = v.NullableText() ?? ""),
        Supported("export_size", (c, v) => c.Export.ExportSize = v.Int(min: 1)),
        Unsupported("export_legacy_format", "SharpTune writes safetensors only, not pytorch_model.bin", IsFalseOrNull),

        // accepted without effect
        Ignored("report_to", "SharpTune has no experiment-tracker integrations", v => v.IsNull || v.Is("none")),
        Ignored("logging_dir", "SharpTune writes no TensorBoard logs"),
        Ignored("run_name", "run names are only used by experiment trackers"),
        Ignored("ddp_timeout", "Open MPI's collectives have no timeout to set; a failing rank stops the whole run (docs/distributed.md)", v => v.Is("1800")),
        Ignored("ddp_find_unused_parameters", "SharpTune averages every trainable parameter's gradient at every step"),
        Ignored("dataloader_num_workers", "SharpTune loads batches in-process", v => v.Is("0")),
        Ignored("dataloader_pin_memory", "SharpTune loads batches in-process"),
        Ignored("dataloader_persistent_workers", "SharpTune loads batches in-process"),
        Ignored("preprocessing_num_workers", "SharpTune tokenizes in-process", v => v.IsNull),
        Supported("preprocessing_batch_size", (c, v) => c.Data.PreprocessingBatchSize = v.Int(min: 1)),
        Ignored("overwrite_cache", "SharpTune keeps no tokenized-dataset cache", IsFalseOrNull),
        Ignored("trust_remote_code", "SharpTune runs no model code from model folders", IsFalseOrNull),
        Ignored("save_only_model", "SharpTune decides what a checkpoint holds", IsFalseOrNull),
        Ignored("fp16", "SharpTune trains in fp32 master weights on CPU", IsFalseOrNull),
        Ignored("tf32", "SharpTune trains in fp32 master weights on CPU", IsFalseOrNull),
        Ignored("flash_attn", "SharpTune uses its own attention kernel", v => v.Is("auto")),
        Ignored("use_reentrant_gc", "SharpTune's gradient checkpointing has a single implementation"),
        Ignored("gradient_checkpointing_kwargs", "SharpTune's gradient checkpointing has a single implementation"),
        Ignored("upcast_layernorm", "SharpTune computes in fp32", IsFalseOrNull),
        Ignored("upcast_lmhead_output", "SharpTune computes in fp32", IsFalseOrNull),
        Ignored("low_cpu_mem_usage", "SharpTune memory-maps checkpoints"),
        Ignored("export_device", "merging always runs on the CPU", v => v.Is("cpu")),
        Ignored("cache_dir", HubDownloadReason),
        Ignored("hf_hub_token", HubDownloadReason),
        Ignored("ms_hub_token", ModelScopeTokenReason),
        Ignored("om_hub_token", OtherHubReason),
        Supported("model_revision", (c, v) => c.Model.ModelRevision = v.Text()),
        Ignored("print_param_status", "SharpTune prints the trainable-parameter summary itself"),
        Ignored("ignore_pad_token_for_loss", "padding is always excluded from the loss", v => !v.IsFalse),
        Ignored("buffer_size", "it only applies to dataset streaming"),
        Ignored("disable_tqdm", "SharpTune prints its own progress lines"),
        Ignored("log_level", "SharpTune prints its own progress lines"),
        Ignored("torch_compile", "SharpTune has no PyTorch to compile", IsFalseOrNull),
        Ignored("remove_unused_columns", "LLaMA-Factory turns it off itself"),
        Ignored("include_num_input_tokens_seen", "SharpTune reports token counts itself"),
        Ignored("include_effective_tokens_per_second", "SharpTune reports throughput itself"),
        Ignored("max_length", "generation is limited by max_new_tokens", v => v.Is("1024")),
        Ignored("length_penalty", "it only applies to beam search", v => v.Is("1") || v.Is("1.0")),
        Unsupported("num_beams", "beam search is not available; predictions are greedy or sampled", v => v.Is("1")),
        Unsupported("infer_backend", "SharpTune runs its own inference engine, not vLLM, SGLang or KTransformers", v => v.Is("huggingface")),

        // distributed training: no-ops in one process
        Ignored("deepspeed", "DeepSpeed ZeRO would shard the optimizer state, gradients and weights across GPU processes; " + OneProcessReason, IsFalseOrNull),
        Ignored("fsdp", "FSDP would shard the parameters, gradients and optimizer state across GPU processes; " + OneProcessReason, v => v.IsNull || v.Is("") || v.IsFalse),
        Ignored("fsdp_config", "it configures FSDP, which would shard the model across GPU processes; " + OneProcessReason, v => v.IsNull),
        Ignored("fp8_enable_fsdp_float8_all_gather", "it configures FSDP's fp8 all-gather across GPU processes; " + OneProcessReason, IsFalseOrNull),
        Ignored("parallelism_config", "it configures Accelerate's tensor, context and data parallelism across GPUs; " + OneProcessReason, v => v.IsNull),
        Ignored("accelerator_config", "it configures Accelerate's multi-device batch dispatch; " + OneProcessReason, v => v.IsNull),
        Ignored("average_tokens_across_devices", "it averages token counts across GPU processes; " + OneProcessReason, v => !v.IsFalse),
        Ignored("ddp_backend", "SharpTune's data-parallel processes communicate through Open MPI (docs/distributed.md)", v => v.IsNull),
        Ignored("ddp_broadcast_buffers", "it configures DDP across processes; " + OneProcessReason, v => v.IsNull),
        Ignored("ddp_bucket_cap_mb", "SharpTune's gradient buckets are 25 MB, DDP's default", v => v.IsNull),
        Ignored("local_rank", "it is a distributed launcher's process index; " + OneProcessReason, v => v.Is("-1")),
        Ignored("master_addr", "it is the address of a distributed run's first process; " + OneProcessReason, v => v.IsNull),
        Ignored("master_port", "it is the port of a distributed run's first process; " + OneProcessReason, v => v.IsNull),
        Ignored("log_level_replica", "it sets the log level of a distributed run's other processes; " + OneProcessReason),
        Ignored("log_on_each_node", "it decides logging on each machine of a multi-node run; " + OneProcessReason),
        Ignored("save_on_each_node", "it decides saving on each machine of a multi-node run; " + OneProcessReason, IsFalseOrNull),
        Ignored("eval_use_gather_object", "it gathers evaluation outputs across GPU processes; " + OneProcessReason, IsFalseOrNull),
        Ignored("data_shared_file_system", "it tells a multi-node run whether its machines share the dataset cache; " + OneProcessReason, IsFalseOrNull),
        Ignored("use_mca", "Megatron-Core (USE_MCA) would split the model across GPUs with tensor and pipeline parallelism; " + OneProcessReason, IsFalseOrNull),
        Ignored("use_megatron_bridge", "Megatron-Bridge (USE_MEGATRON_BRIDGE) would split the model across GPUs; " + OneProcessReason, IsFalseOrNull),
        Ignored("use_hyper_parallel", "HyperParallel would shard the model across GPUs (FSDP and tensor parallelism); " + OneProcessReason, IsFalseOrNull),
        Ignored("hyper_parallel_args", OnlyWith("use_hyper_parallel", "HyperParallel would shard the model across GPUs; " + OneProcessReason), v => v.IsNull),
        Ignored("hyper_parallel_cp_size", OnlyWith("use_hyper_parallel", "HyperParallel would shard the model across GPUs; " + OneProcessReason), v => v.Is("1")),
        .. IgnoredAll(MegatronReason, MegatronBridgeKeys),

        // accepted without effect: settings of machinery SharpTune does not have or does not need
        Ignored("use_cpu", "SharpTune always runs on the CPU", _ => true),
        Ignored("use_cache", "training never keeps a KV cache", IsFalseOrNull),
        Ignored("use_kv_cache", "generation always uses a KV cache", v => !v.IsFalse),
        Ignored("use_v1_kernels", "SharpTune uses its own kernels", IsFalseOrNull),
        Ignored("infer_dtype", "inference multiplies the weights in their stored dtype with fp32 activations", v => v.Is("auto")),
        Ignored("offload_folder", "SharpTune keeps the model in main memory and offloads nothing", v => v.Is("offload")),
        Ignored("torch_compile_backend", NoTorchReason + " to compile", v => v.IsNull),
        Ignored("torch_compile_mode", NoTorchReason + " to compile", v => v.IsNull),
        Ignored("torch_empty_cache_steps", "SharpTune has no GPU memory cache to empty", v => v.IsNull),
        Ignored("enable_torch_profiler", NoTorchReason + " profiler", IsFalseOrNull),
        .. IgnoredAll(OnlyWith("enable_torch_profiler", NoTorchReason + " profiler"), ["profiler_output_dir", "profiler_wait_steps", "profiler_warmup_steps", "profiler_active_steps", "profiler_repeat",
            "profiler_record_shapes", "profiler_profile_memory", "profiler_with_stack", "profile_modules"]),
        Ignored("debug", "transformers' debug options (underflow/overflow detection, TPU metrics) are not available", v => v.IsNull || v.Is("")),
        Ignored("skip_memory_metrics", "memory metrics are not reported", v => !v.IsFalse),
        Ignored("full_determinism", "SharpTune seeds every random generator from seed and has no nondeterministic GPU kernels to turn off", IsFalseOrNull),
        Ignored("auto_find_batch_size", "it only lowers the batch size after a GPU out-of-memory error; SharpTune runs the batch size you set", IsFalseOrNull),
        Ignored("dataloader_prefetch_factor", "SharpTune loads batches in-process", v => v.IsNull),
        Ignored("label_names", "SharpTune's collator names the labels itself", v => v.IsNull),
        Ignored("length_column_name", OnlyWith("train_sampling_strategy group_by_length", "length-grouped sampling is not available"), v => v.Is("length")),
        Ignored("eval_accumulation_steps", "evaluation keeps only the running loss, never the outputs", v => v.IsNull),
        Ignored("eval_do_concat_batches", "evaluation keeps only the running loss, never the outputs"),
        Ignored("prediction_loss_only", "evaluation reports the loss only anyway", IsFalseOrNull),
        Ignored("batch_eval_metrics", "SharpTune computes its metrics itself", IsFalseOrNull),
        Ignored("include_for_metrics", "SharpTune computes its metrics itself", v => v.IsNull),
        Ignored("restore_callback_states_from_checkpoint", "SharpTune has no trainer callbacks", IsFalseOrNull),
        Ignored("logging_nan_inf_filter", "SharpTune logs the loss as computed, NaN or infinite included", v => !v.IsFalse),
        Ignored("project", "SharpTune has no experiment-tracker integrations", v => v.Is("huggingface")),
        Ignored("trackio_space_id", "SharpTune has no experiment-tracker integrations", v => v.Is("trackio")),
        Ignored("bf16_full_eval", "evaluation computes as training does (bf16 products with bf16: true, fp32 otherwise)", IsFalseOrNull),
        Ignored("fp16_full_eval", "evaluation computes as training does (bf16 products with bf16: true, fp32 otherwise)", IsFalseOrNull),
        Ignored("generation_max_length", "prediction length is set by max_new_tokens", v => v.IsNull),
        Ignored("greater_is_better", OnlyWith("load_best_model_at_end", "keeping the best checkpoint is not available"), v => v.IsNull),
        Ignored("optim_target_modules", "it only applies to the GaLore and APOLLO optimizers, which are not available", v => v.IsNull),
        Ignored("liger_kernel_config", OnlyWith("use_liger_kernel", "Liger kernels are CUDA kernels"), v => v.IsNull),
        Ignored("init_special_tokens", "it only applies when adding tokens, which is not available", v => v.Is("noise_init")),
        Ignored("fp8_backend", OnlyWith("fp8", "FP8 training is not available"), v => v.Is("auto")),
        .. IgnoredAll(OnlyWith("push_to_hub", "uploading to the Hugging Face Hub is not available"), ["hub_token", "hub_private_repo", "hub_strategy", "hub_always_push", "hub_revision"]),
        .. IgnoredAll("it only applies to infer_backend: vllm, which is not available", ["vllm_maxlen", "vllm_gpu_util", "vllm_enforce_eager", "vllm_max_lora_rank", "vllm_config"]),
        .. IgnoredAll("it only applies to infer_backend: sglang, which is not available", ["sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size", "sglang_config", "sglang_lora_backend"]),
        .. IgnoredAll(OnlyWith("use_kt", "KTransformers is not available"), ["kt_config", "kt_cpu_activation", "kt_weight_path", "kt_non_expert_weight_path", "kt_expert_checkpoint_path",
            "kt_use_lora_experts", "kt_lora_expert_num", "kt_lora_expert_intermediate_size"], v => v.IsNull),

        // the settings of features that are off unless their own key turns them on (that key is refused below)
        .. IgnoredAll(OnlyWith("finetuning_type oft", PeftReason("OFT")), ["oft_rank", "oft_block_size", "oft_target", "module_dropout"]),
        .. IgnoredAll(OnlyWith("use_galore", "GaLore is not available"), ["galore_target", "galore_rank", "galore_update_interval", "galore_scale", "galore_proj_type", "galore_layerwise"]),
        .. IgnoredAll(OnlyWith("use_apollo", "APOLLO is not available"), ["apollo_target", "apollo_rank", "apollo_update_interval", "apollo_scale", "apollo_proj", "apollo_proj_type",
            "apollo_scale_type", "apollo_layerwise", "apollo_scale_front"]),
        .. IgnoredAll(OnlyWith("use_badam", "BAdam is not available"), ["badam_mode", "badam_start_block", "badam_switch_mode", "badam_switch_interval", "badam_update_ratio", "badam_mask_mode", "badam_verbose"]),
        .. IgnoredAll(OnlyWith("use_swanlab", "SwanLab logging is not available"), ["swanlab_project", "swanlab_workspace", "swanlab_run_name", "swanlab_mode", "swanlab_api_key", "swanlab_logdir",
            "swanlab_lark_webhook_url", "swanlab_lark_secret"]),
        Ignored("asft_alpha", OnlyWith("use_asft_loss", "the ASFT loss is not available")),
        Ignored("eaft_alpha", OnlyWith("use_eaft_loss", "the EAFT loss is not available")),

        // features SharpTune does not have
        Unsupported("ray_num_workers", RayReason, v => v.Is("1")),
        Unsupported("ray_run_name", RayReason, v => v.IsNull),
        Unsupported("ray_storage_path", RayReason, v => v.Is("./saves")),
        Unsupported("ray_storage_filesystem", RayReason, v => v.IsNull),
        Unsupported("ray_init_kwargs", RayReason, v => v.IsNull),
        Unsupported("resources_per_worker", RayReason),
        Unsupported("placement_strategy", RayReason, v => v.Is("PACK")),
        Unsupported("quantization_device_map", "device maps do not apply: SharpTune keeps the quantized model in main memory", v => v.IsNull),
        Unsupported("fp8", "FP8 training is not available", IsFalseOrNull),
        Unsupported("pure_bf16", "SharpTune trains in fp32 master weights", IsFalseOrNull),
        Unsupported("adapter_folder", "loading every adapter of a folder is not available; list the adapters in adapter_name_or_path", v => v.IsNull),
        Unsupported("use_asft_loss", "the ASFT loss is not available", IsFalseOrNull),
        Unsupported("use_eaft_loss", "the EAFT loss is not available", IsFalseOrNull),
        Unsupported("use_liger_kernel", "Liger kernels are CUDA kernels", IsFalseOrNull),
        Unsupported("use_kt", "KTransformers is not available", IsFalseOrNull),
        Unsupported("enable_thinking", "training with thinking turned off (empty <think> blocks) is not available", v => v.IsNull || v.IsTrue),
        Unsupported("preserve_thinking", "keeping the reasoning of earlier turns is not available", IsFalseOrNull),
        Unsupported("disable_shuffling", "training always shuffles its examples (seeded by seed)", IsFalseOrNull),
        Unsupported("train_sampling_strategy", "training always samples its examples in a seeded random order", v => v.Is("random")),
        Unsupported("sortish_sampler", "training always samples its examples in a seeded random order", IsFalseOrNull),
        Unsupported("data_seed", "a separate data-order seed is not available; the order follows seed", v => v.IsNull),
        Unsupported("ignore_data_skip", "a resumed run always continues the data order where it stopped", IsFalseOrNull),
        Unsupported("dataloader_drop_last", "dropping the last incomplete batch is not available", IsFalseOrNull),
        Unsupported("logging_strategy", "only logging_strategy: steps is available", v => v.Is("steps")),
        Unsupported("logging_first_step", "logging the first step is not available; logging follows logging_steps", IsFalseOrNull),
        Unsupported("eval_delay", "delaying the first evaluation is not available", v => v.Is("0") || v.Is("0.0")),
        Unsupported("eval_on_start", "evaluating before the first step is not available", IsFalseOrNull),
        Unsupported("enable_jit_checkpoint", "checkpointing on SIGTERM is not available", IsFalseOrNull),
        Unsupported("optim_args", "extra optimizer arguments are not available", v => v.IsNull || v.Is("")),
        Unsupported("generation_config", "a separate generation config for prediction is not available; use the generation keys (max_new_tokens, temperature, ...)", v => v.IsNull),
        Unsupported("generation_num_beams", "beam search is not available; predictions are greedy or sampled", v => v.IsNull || v.Is("1")),
        Unsupported("eval_num_beams", "beam search is not available; predictions are greedy or sampled", v => v.IsNull || v.Is("1")),
        Unsupported("use_unsloth", "Unsloth is a CUDA library", IsFalseOrNull),
        Unsupported("use_unsloth_gc", "Unsloth is a CUDA library", IsFalseOrNull),
        Unsupported("enable_liger_kernel", "Liger kernels are CUDA kernels", IsFalseOrNull),
        Unsupported("use_galore", "GaLore is not available", IsFalseOrNull),
        Unsupported("use_apollo", "APOLLO is not available", IsFalseOrNull),
        Unsupported("use_badam", "BAdam is not available", IsFalseOrNull),
        Unsupported("use_adam_mini", "Adam-mini is not available; SharpTune uses AdamW", IsFalseOrNull),
        Unsupported("use_muon", "Muon is not available; SharpTune uses AdamW", IsFalseOrNull),
        Unsupported("use_llama_pro", "LLaMA Pro block expansion is not available", IsFalseOrNull),
        Unsupported("use_dft_loss", "the DFT loss is not available", IsFalseOrNull),
        Unsupported("use_swanlab", "SwanLab logging is not available", IsFalseOrNull),
        Unsupported("shift_attn", "LongLoRA shift attention is not available", IsFalseOrNull),
        Unsupported("rope_scaling", "changing a model's RoPE scaling is not available", v => v.IsNull),
        Unsupported("mixture_of_depths", "mixture-of-depths is not available", v => v.IsNull),
        Unsupported("moe_aux_loss_coef", "mixture-of-experts models are not supported", v => v.IsNull),
        Unsupported("train_from_scratch", "training from random weights is not available here; create the model with init-model", IsFalseOrNull),
        Unsupported("resize_vocab", "resizing the vocabulary is not available", IsFalseOrNull),
        Unsupported("add_tokens", "adding tokens is not available", v => v.IsNull),
        Unsupported("add_special_tokens", "adding tokens is not available", v => v.IsNull),
        Unsupported("new_special_tokens_config", "adding tokens is not available", v => v.IsNull),
        Unsupported("split_special_tokens", "special tokens are always kept whole", IsFalseOrNull),
        Unsupported("use_fast_tokenizer", "SharpTune's tokenizer is the fast (tokenizer.json) one", v => !v.IsFalse),
        Unsupported("streaming", "dataset streaming is not available", IsFalseOrNull),
        Unsupported("mix_strategy", "only the concat dataset mix is available", v => v.Is("concat")),
        Unsupported("interleave_probs", "only the concat dataset mix is available", v => v.IsNull),
        Unsupported("eval_on_each_dataset", "evaluation runs on the merged evaluation set", IsFalseOrNull),
        Unsupported("tokenized_path", "saving or loading tokenized datasets is not available", v => v.IsNull),
        Unsupported("compute_accuracy", "token accuracy at evaluation is not available", IsFalseOrNull),
        Unsupported("load_best_model_at_end", "keeping the best checkpoint is not available", IsFalseOrNull),
        Unsupported("metric_for_best_model", "keeping the best checkpoint is not available", v => v.IsNull),
        Unsupported("early_stopping_steps", "early stopping is not available", v => v.IsNull),
        Unsupported("label_smoothing_factor", "label smoothing is not available", v => v.Is("0") || v.Is("0.0")),
        Unsupported("neftune_noise_alpha", "NEFTune noise is not available", v => v.IsNull),
        Unsupported("push_to_hub", NoHubReason, IsFalseOrNull),
        Unsupported("hub_model_id", NoHubReason, v => v.IsNull),
        Unsupported("export_hub_model_id", NoHubReason, v => v.IsNull),
        Unsupported("export_quantization_bit", "quantized export (GPTQ) is not available", v => v.IsNull),
        Unsupported("export_quantization_dataset", "quantized export (GPTQ) is not available", v => v.IsNull),
        Unsupported("export_quantization_nsamples", "quantized export (GPTQ) is not available"),
        Unsupported("export_quantization_maxlen", "quantized export (GPTQ) is not available"),
        Unsupported("media_dir", MultimodalReason, v => v.IsNull),
        Unsupported("image_max_pixels", MultimodalReason),
        Unsupported("image_min_pixels", MultimodalReason),
        Unsupported("image_do_pan_and_scan", MultimodalReason),
        Unsupported("crop_to_patches", MultimodalReason),
        Unsupported("video_max_pixels", MultimodalReason),
        Unsupported("video_min_pixels", MultimodalReason),
        Unsupported("video_fps", MultimodalReason),
        Unsupported("video_maxlen", MultimodalReason),
        Unsupported("use_audio_in_video", MultimodalReason),
        Unsupported("audio_sampling_rate", MultimodalReason),
        Unsupported("freeze_vision_tower", MultimodalReason),
        Unsupported("freeze_multi_modal_projector", MultimodalReason),
        Unsupported("freeze_language_model", MultimodalReason),
    ];

    public static IReadOnlyDictionary<string, ConfigKey> All { get; } = Table.ToDictionary(k => k.Name, StringComparer.Ordinal);

    /// <summary>The known key closest to <paramref name="unknown"/> by edit distance, when it is close enough to be a typo.</summary>
    public static string? Suggest(string unknown)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string name in All.Keys.Order(StringComparer.Ordinal))
        {
            int distance = EditDistance(unknown, name);
            if (distance < bestDistance) (best, bestDistance) = (name, distance);
        }
        // Short names allow one edit, longer ones about one per four characters: enough for typos, not for guesses.
        int allowed = unknown.Length <= 4 ? 1 : Math.Max(2, unknown.Length / 4);
        return bestDistance <= allowed ? best : null;
    }

    /// <summary>Levenshtein distance (insertions, deletions and substitutions all cost 1).</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>A registered chat-template name, "auto" or null (both of which read the model's tokenizer_config.json).</summary>
    private static string? KnownTemplate(ConfigValue v)
    {
        string? name = v.NullableText();
        if (name is null or "auto" || ChatTemplates.Names.Contains(name)) return name;
        throw v.Error($"{MessageText.Quote(name)} is not a SharpTune template (known: auto, {string.Join(", ", ChatTemplates.Names)})");
    }

    private static bool IsFalseOrNull(ConfigValue v) => v.IsNull || v.IsFalse;

    /// <summary>
    /// stage: every LLaMA-Factory stage parses; which of them train is the workflow's business
    /// (<see cref="Workflows.TrainingWorkflow"/>). <see cref="SftConfig"/> checks it before any other key, since the
    /// stage decides what the other keys mean.
    /// </summary>
    internal static string Stage(ConfigValue v) => v.Choice(["sft", "pt", "rm", "ppo", "dpo", "kto"], []);

    /// <summary>A number greater than 0.</summary>
    private static double Positive(ConfigValue v)
    {
        double value = v.Double(min: 0);
        return value > 0 ? value : throw v.Error("must be greater than 0, got 0");
    }

    /// <summary>LLaMA-Factory's GeneratingArguments check: top_p in (0, 1].</summary>
    private static double TopP(ConfigValue v)
    {
        double value = v.Double(max: 1);
        return value > 0 ? value : throw v.Error($"must be in (0, 1], got {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
    }

    /// <summary>optim: a supported name or one of its aliases, stored as the supported name.</summary>
    private static void ReadOptim(SftConfig c, ConfigValue v)
    {
        string name = v.Text();
        if (SupportedOptimizers.Contains(name))
        {
            c.Training.Optim = name;
            return;
        }
        if (!OptimizerAliases.TryGetValue(name, out string? canonical))
            throw v.Error($"{MessageText.Quote(name)} is not supported (supported: {string.Join(", ", SupportedOptimizers.Concat(OptimizerAliases.Keys))})");
        c.Training.Optim = canonical;
        if (name == "adamw_hf")
            c.Notes.Add("optim adamw_hf runs adamw_torch: transformers' own AdamW applies weight decay after the step (a difference of order learning_rate² · weight_decay) and adds ε before the bias correction");
    }

    /// <summary>bitsandbytes quantises to 4 (NF4/FP4) or 8 bits (LLM.int8); null turns quantization off.</summary>
    private static int? QuantizationBit(ConfigValue v)
    {
        int? bits = v.NullableInt();
        if (bits is null or 4 or 8) return bits;
        throw v.Error($"bitsandbytes quantizes to 4 or 8 bits, got {bits}");
    }

    /// <summary>Only bitsandbytes' scheme (LLaMA-Factory's default, bnb) is implemented; the other back-ends are named as not supported.</summary>
    private static void QuantizationMethod(ConfigValue v)
    {
        if (v.IsNull || v.Is("bnb") || v.Is("bitsandbytes")) return;
        string[] others = ["gptq", "awq", "aqlm", "hqq", "eetq", "quanto", "mxfp4"];
        string method = v.Text();
        if (others.Contains(method))
            throw new ConfigException($"quantization_method {MessageText.Quote(method)} is not supported: SharpTune quantizes with bitsandbytes' scheme only (bnb) ({v.Origin})");
        throw v.Error($"expected bnb (or one of LLaMA-Factory's {string.Join(", ", others)}, which SharpTune does not support), got {MessageText.Quote(method)}");
    }

    /// <summary>transformers passes <c>true</c> to Trainer.train, which resumes from output_dir's latest checkpoint.</summary>
    private static void ReadResumeFromCheckpoint(SftConfig c, ConfigValue v)
    {
        c.Training.ResumeFromCheckpoint = null;
        c.Training.ResumeFromLatestCheckpoint = false;
        if (v.IsNull || v.IsFalse) return;
        if (v.IsTrue) c.Training.ResumeFromLatestCheckpoint = true;
        else c.Training.ResumeFromCheckpoint = v.Text();
    }

    private static ConfigKey Supported(string name, Action<SftConfig, ConfigValue> apply) => new(name, KeyStatus.Supported, Apply: apply);

    private static ConfigKey Ignored(string name, string reason, Func<ConfigValue, bool>? isInert = null) =>
        new(name, KeyStatus.Ignored, Reason: reason, IsInert: isInert);

    /// <summary>One <see cref="Ignored"/> row per name, all with the same reason (the settings of one feature).</summary>
    private static IEnumerable<ConfigKey> IgnoredAll(string reason, string[] names, Func<ConfigValue, bool>? isInert = null) =>
        names.Select(name => Ignored(name, reason, isInert));

    private static ConfigKey Unsupported(string name, string reason, Func<ConfigValue, bool>? isInert = null) =>
        new(name, KeyStatus.Unsupported, Reason: reason, IsInert: isInert);

    private static ConfigKey Alias(string name, string canonical) => new(name, KeyStatus.Supported, AliasOf: canonical);
}
