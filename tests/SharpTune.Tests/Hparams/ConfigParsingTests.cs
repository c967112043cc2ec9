using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>Keys, types, overrides and LLaMA-Factory's defaults, on small inline configs (no file system).</summary>
public sealed class ConfigParsingTests
{
    private const string Model = "model_name_or_path: Qwen/Qwen2.5-0.5B\n";
    private const string Training = Model + "do_train: true\ndataset: alpaca_en_demo\noutput_dir: out\n";

    private static SftConfig Parse(string yaml, params string[] overrides) => SftConfig.Parse(yaml, overrides, Path.GetTempPath());

    private static string Error(string yaml, params string[] overrides)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(yaml, overrides));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void DefaultsAreLlamaFactoryAndTransformersDefaults()
    {
        var c = Parse(Model);
        Assert.Empty(c.Model.AdapterNameOrPath);
        Assert.Null(c.Data.Template);
        Assert.Empty(c.Data.Dataset);
        Assert.Equal(Path.Combine(Path.GetTempPath(), "data"), c.Data.DatasetDir);
        Assert.Equal(2048, c.Data.CutoffLen);
        Assert.False(c.Data.TrainOnPrompt);
        Assert.Null(c.Data.MaxSamples);
        Assert.Equal(0, c.Data.ValSize);
        Assert.False(c.Data.Packing);
        Assert.False(c.Data.SkipInvalidRecords);
        Assert.Equal("sft", c.Finetuning.Stage);
        Assert.Equal(FinetuningType.Lora, c.Finetuning.FinetuningType);
        Assert.Equal(8, c.Finetuning.LoraRank);
        Assert.Equal(16, c.Finetuning.EffectiveLoraAlpha);
        Assert.Equal(0, c.Finetuning.LoraDropout);
        Assert.Equal(["all"], c.Finetuning.LoraTarget);
        Assert.Equal(2, c.Finetuning.FreezeTrainableLayers);
        Assert.Equal(["all"], c.Finetuning.FreezeTrainableModules);
        Assert.False(c.Training.DoTrain);
        Assert.False(c.Training.DoEval);
        Assert.Equal(8, c.Training.PerDeviceTrainBatchSize);
        Assert.Equal(8, c.Training.PerDeviceEvalBatchSize);
        Assert.Equal(1, c.Training.GradientAccumulationSteps);
        Assert.Equal(5e-5, c.Training.LearningRate);
        Assert.Equal(3.0, c.Training.NumTrainEpochs);
        Assert.Equal(-1, c.Training.MaxSteps);
        Assert.Equal("linear", c.Training.LrSchedulerType);
        Assert.Equal((0.9, 0.999, 1e-8), (c.Training.AdamBeta1, c.Training.AdamBeta2, c.Training.AdamEpsilon));
        Assert.Equal(0, c.Training.WeightDecay);
        Assert.Equal(1.0, c.Training.MaxGradNorm);
        Assert.Equal((500, "steps", 500), (c.Training.LoggingSteps, c.Training.SaveStrategy, c.Training.SaveSteps));
        Assert.Null(c.Training.SaveTotalLimit);
        Assert.Equal("no", c.Training.EvalStrategy);
        Assert.Null(c.Training.EvalSteps);
        Assert.Equal(42, c.Training.Seed);
        Assert.True(c.Training.GradientCheckpointing);
        Assert.Equal(5, c.Export.ExportSize);
        Assert.Empty(c.Notes);
    }

    [Theory]
    [InlineData("lora_alpha: null", 8, 16)]
    [InlineData("lora_alpha: 0", 8, 16)]
    [InlineData("lora_rank: 32", 32, 64)]
    [InlineData("lora_rank: 32\nlora_alpha: 8", 32, 8)]
    public void LoraAlphaDefaultsToTwiceTheRank(string yaml, int rank, int alpha)
    {
        var c = Parse(Model + yaml);
        Assert.Equal(rank, c.Finetuning.LoraRank);
        Assert.Equal(alpha, c.Finetuning.EffectiveLoraAlpha);
    }

    [Theory]
    [InlineData("learning_rate: 1.0e-4", 1e-4)]
    [InlineData("learning_rate: \"1.0e-4\"", 1e-4)]
    [InlineData("learning_rate: '2e-5'", 2e-5)]
    [InlineData("learning_rate: 1e-3", 1e-3)]
    [InlineData("learning_rate: 0.0003", 3e-4)]
    public void LearningRateAsYamlGivesIt(string yaml, double expected) =>
        Assert.Equal(expected, Parse(Model + yaml).Training.LearningRate);

    [Fact]
    public void ListsAreCommaSeparatedOrYamlLists()
    {
        var c = Parse(Model + "dataset: identity, alpaca_en_demo\neval_dataset: [a, b]\nlora_target: q_proj,v_proj\nadditional_target:\n  - embed_tokens\n");
        Assert.Equal(["identity", "alpaca_en_demo"], c.Data.Dataset);
        Assert.Equal(["a", "b"], c.Data.EvalDataset);
        Assert.Equal(["q_proj", "v_proj"], c.Finetuning.LoraTarget);
        Assert.Equal(["embed_tokens"], c.Finetuning.AdditionalTarget);
        Assert.Contains("empty name", Error(Model + "dataset: a,,b"));
    }

    [Fact]
    public void OverridesApplyAfterTheFile()
    {
        var c = Parse(Training + "learning_rate: 1.0e-4\nlora_rank: 8\n",
            "learning_rate=2e-5", "lora_rank=16", "dataset=identity,alpaca_en_demo", "lr_scheduler_type=cosine_with_min_lr",
            "lr_scheduler_kwargs={min_lr: 1.0e-6}", "template=qwen", "max_samples=");
        Assert.Equal(2e-5, c.Training.LearningRate);
        Assert.Equal(16, c.Finetuning.LoraRank);
        Assert.Equal(32, c.Finetuning.EffectiveLoraAlpha);
        Assert.Equal(["identity", "alpaca_en_demo"], c.Data.Dataset);
        Assert.Equal("cosine_with_min_lr", c.Training.LrSchedulerType);
        Assert.Equal(new Dictionary<string, double> { ["min_lr"] = 1e-6 }, c.Training.LrSchedulerKwargs);
        Assert.Equal("qwen", c.Data.Template);
        Assert.Null(c.Data.MaxSamples);
    }

    [Fact]
    public void OverrideErrors()
    {
        Assert.Equal("override 'learning_rate' is not key=value", Error(Model, "learning_rate"));
        Assert.Contains("nested keys are not supported", Error(Model, "lr_scheduler_kwargs.min_lr=1e-6"));
        Assert.Equal("lora_rank: expected an integer, got 'eight' (command-line override 'lora_rank=eight')", Error(Model, "lora_rank=eight"));
        Assert.Contains("did you mean 'learning_rate'?", Error(Model, "learnig_rate=1e-4"));
    }

    [Theory]
    [InlineData("learning_rat: 1e-4", "learning_rate")]
    [InlineData("lora_rnak: 8", "lora_rank")]
    [InlineData("gradient_accumulation_step: 4", "gradient_accumulation_steps")]
    [InlineData("evaluation_stratgy: steps", "evaluation_strategy")]
    [InlineData("cutof_len: 1024", "cutoff_len")]
    public void UnknownKeySuggestsTheClosestKnownKey(string yaml, string suggestion) =>
        Assert.Equal($"unknown key '{yaml[..yaml.IndexOf(':')]}' (did you mean '{suggestion}'?) (line 2 of config)", Error(Model + yaml));

    [Theory]
    [InlineData("completely_made_up_option")]
    [InlineData("foo")]
    public void UnknownKeyWithoutACloseMatch(string key) =>
        Assert.Equal($"unknown key '{key}' (line 2 of config)", Error(Model + key + ": 1"));

    [Fact]
    public void DuplicateKeyIsAnError() => Assert.StartsWith("config is not valid YAML: Duplicate key lora_rank", Error(Model + "lora_rank: 8\nlora_rank: 16\n"));

    [Theory]
    [InlineData("lora_rank: eight", "lora_rank: expected an integer, got 'eight' (line 2 of config)")]
    [InlineData("lora_rank: 8.5", "lora_rank: expected an integer, got '8.5' (line 2 of config)")]
    [InlineData("lora_rank: [8]", "lora_rank: expected an integer, got a list (line 2 of config)")]
    [InlineData("learning_rate: fast", "learning_rate: expected a number, got 'fast' (line 2 of config)")]
    [InlineData("learning_rate: {a: 1}", "learning_rate: expected a number, got a mapping (line 2 of config)")]
    [InlineData("do_train: maybe", "do_train: expected true or false, got 'maybe' (line 2 of config)")]
    [InlineData("cutoff_len: null", "cutoff_len: expected an integer, got null (line 2 of config)")]
    [InlineData("lr_scheduler_kwargs: 3", "lr_scheduler_kwargs: expected a mapping of names to numbers, got '3' (line 2 of config)")]
    [InlineData("lr_scheduler_type: cosine\nlr_scheduler_kwargs: {num_cycles: half}", "lr_scheduler_kwargs.num_cycles: expected a number, got 'half' (line 3 of config)")]
    [InlineData("logging_steps: 0.1", "logging_steps: must be a whole number of steps ≥ 1, got 0.1 (fractions of the total steps are not supported) (line 2 of config)")]
    public void TypeErrorsNameTheKeyAndTheExpectedType(string yaml, string message) => Assert.Equal(message, Error(Model + yaml));

    [Theory]
    [InlineData("lora_rank: 0", "lora_rank: must be at least 1, got 0")]
    [InlineData("cutoff_len: 0", "cutoff_len: must be at least 1, got 0")]
    [InlineData("val_size: -0.1", "val_size: must be at least 0, got -0.1")]
    [InlineData("gradient_accumulation_steps: 0", "gradient_accumulation_steps: must be at least 1, got 0")]
    [InlineData("per_device_train_batch_size: 0", "per_device_train_batch_size: must be at least 1, got 0")]
    [InlineData("lora_dropout: 1", "lora_dropout: must be at least 0 and below 1, got 1")]
    [InlineData("warmup_ratio: 1.5", "warmup_ratio: must be at least 0 and at most 1, got 1.5")]
    [InlineData("adam_beta2: 1.0", "adam_beta2: must be at least 0 and below 1, got 1")]
    [InlineData("freeze_trainable_layers: 0", "freeze_trainable_layers: must not be 0")]
    [InlineData("val_size: 2.5\ndataset: a", "val_size: a value of 1 or more is a number of examples and must be whole, got 2.5")]
    [InlineData("val_size: 0.1", "val_size: needs dataset to split from")]
    [InlineData("val_size: 0.1\ndataset: a\neval_dataset: b", "val_size: cannot be combined with eval_dataset")]
    [InlineData("mask_history: true\ntrain_on_prompt: true", "mask_history: cannot be combined with train_on_prompt")]
    [InlineData("do_train: true\ndataset: a", "output_dir: required for training (do_train: true)")]
    [InlineData("do_train: true\noutput_dir: out", "dataset: required for training (do_train: true)")]
    [InlineData("eval_strategy: steps", "do_eval: needs eval_dataset or val_size")]
    [InlineData("finetuning_type: full\nadapter_name_or_path: a", "adapter_name_or_path: adapters are only valid with an adapter method (finetuning_type: lora, ia3, bitfit, adapter, prompt_tuning, p_tuning or prefix_tuning)")]
    [InlineData("finetuning_type: freeze\nuse_rslora: true", "use_rslora: only valid with finetuning_type: lora")]
    [InlineData("finetuning_type: prompt_tuning\ndo_train: true\ndataset: a\noutput_dir: o", "num_virtual_tokens: required to train finetuning_type: prompt_tuning (PEFT has no default)")]
    [InlineData("finetuning_type: prompt_tuning\nnum_virtual_tokens: 4\nprompt_tuning_init: TEXT", "prompt_tuning_init_text: required with prompt_tuning_init: TEXT")]
    [InlineData("finetuning_type: p_tuning\nadapter_name_or_path: a,b", "adapter_name_or_path: finetuning_type p_tuning continues a single adapter: a prompt or prefix is not a weight merge")]
    [InlineData("prompt_tuning_init: WORDS", "prompt_tuning_init: expected one of RANDOM, TEXT, SAMPLE_VOCAB")]
    [InlineData("num_virtual_tokens: 0", "num_virtual_tokens: ")]
    [InlineData("template: qwen3_vl_nothink", "template: 'qwen3_vl_nothink' is not a SharpTune template (known: auto, ")]
    [InlineData("dataset_dir: REMOTE:llamafactory/demo_data", "dataset_dir: 'REMOTE:llamafactory/demo_data' names a Hub dataset folder")]
    [InlineData("lr_scheduler_kwargs: {num_cycles: 0.5}", "lr_scheduler_kwargs: 'num_cycles' does not apply to lr_scheduler_type 'linear' (accepted: none)")]
    [InlineData("lr_scheduler_type: cosine_with_min_lr", "lr_scheduler_kwargs: cosine_with_min_lr needs exactly one of min_lr and min_lr_rate")]
    public void ValueChecks(string yaml, string messageStart) => Assert.StartsWith(messageStart, Error(Model + yaml));

    [Fact]
    public void StagePtPacksByDefaultAtFullCutoffLenAsLlamaFactorysParserDoes()
    {
        var pt = Parse(Model + "stage: pt\ncutoff_len: 512\npreprocessing_batch_size: 50\n");
        Assert.Equal("pt", pt.Finetuning.Stage);
        Assert.True(pt.Data.Packing);
        Assert.Equal(512, pt.Data.CutoffLen);
        Assert.Equal(50, pt.Data.PreprocessingBatchSize);

        // Written packing is lowered by one in data_args.__post_init__, whatever the stage.
        var written = Parse(Model + "stage: pt\ncutoff_len: 512\npacking: true\n");
        Assert.Equal(511, written.Data.CutoffLen);
        var unpacked = Parse(Model + "stage: pt\ncutoff_len: 512\npacking: false\n");
        Assert.False(unpacked.Data.Packing);
        Assert.Equal(512, unpacked.Data.CutoffLen);
        Assert.False(Parse(Model + "cutoff_len: 512\n").Data.Packing);
        Assert.Equal(1000, Parse(Model).Data.PreprocessingBatchSize);
    }

    [Theory]
    [InlineData("train_on_prompt: true")]
    [InlineData("mask_history: true")]
    [InlineData("predict_with_generate: true")]
    public void SupervisedOnlyKeysAreRefusedForStagePt(string line)
    {
        string key = line[..line.IndexOf(':')];
        Assert.StartsWith($"{key}: applies to stage sft only, not stage pt", Error(Model + "stage: pt\n" + line + "\n"));
    }

    [Fact]
    public void EvaluationKeysAreLlamaFactorysEvaluationArguments()
    {
        var defaults = Parse(Model);
        Assert.Null(defaults.Evaluation.Task);
        Assert.Equal(Path.Combine(Path.GetTempPath(), "evaluation"), defaults.Evaluation.TaskDir);
        Assert.Equal((4, "en", 5), (defaults.Evaluation.BatchSize, defaults.Evaluation.Lang, defaults.Evaluation.NShot));
        Assert.Null(defaults.Evaluation.SaveDir);

        var c = Parse(Model + "task: cmmlu_test\ntask_dir: sets\nbatch_size: 8\nlang: zh\nn_shot: 0\nsave_dir: out/cmmlu\n");
        Assert.Equal("cmmlu_test", c.Evaluation.Task);
        Assert.Equal(Path.Combine(Path.GetTempPath(), "sets"), c.Evaluation.TaskDir);
        Assert.Equal((8, "zh", 0), (c.Evaluation.BatchSize, c.Evaluation.Lang, c.Evaluation.NShot));
        Assert.Equal(Path.Combine(Path.GetTempPath(), "out", "cmmlu"), c.Evaluation.SaveDir);
        Assert.StartsWith("lang: expected one of en, zh, got 'fr'", Error(Model + "lang: fr\n"));
        Assert.StartsWith("n_shot: ", Error(Model + "n_shot: -1\n"));
    }

    [Fact]
    public void ModelNameOrPathIsRequired()
    {
        Assert.Equal("model_name_or_path: required", Error("do_train: false\n"));
        Assert.Equal("model_name_or_path: required", Error(""));
    }

    [Fact]
    public void NeatPackingTurnsPackingOnAtTheWrittenCutoffLenAsLlamaFactorysParserDoes()
    {
        var neat = Parse(Model + "cutoff_len: 512\nneat_packing: true\n");
        Assert.True(neat.Data.NeatPacking);
        Assert.True(neat.Data.Packing);
        Assert.Equal(512, neat.Data.CutoffLen);
        Assert.Equal(511, Parse(Model + "cutoff_len: 512\npacking: true\nneat_packing: true\n").Data.CutoffLen);
        Assert.StartsWith("neat_packing: applies to stages sft and pt only, not stage dpo", Error(Model + "stage: dpo\nneat_packing: true\n"));
    }

    [Theory]
    [InlineData("stage: sf", "stage: expected one of sft, pt, rm, ppo, dpo, kto, got 'sf' (line 2 of config)")]
    [InlineData("lr_scheduler_type: polynomial", "lr_scheduler_type 'polynomial' is not supported yet (supported: linear, cosine, constant, constant_with_warmup, cosine_with_min_lr) (line 2 of config)")]
    [InlineData("save_strategy: best", "save_strategy 'best' is not supported yet (supported: steps, epoch, no) (line 2 of config)")]
    [InlineData("quantization_device_map: auto", "quantization_device_map is not supported: device maps do not apply")]
    [InlineData("mix_strategy: interleave_under", "mix_strategy is not supported: only the concat dataset mix is available")]
    [InlineData("streaming: true", "streaming is not supported: ")]
    [InlineData("use_unsloth: true", "use_unsloth is not supported: ")]
    [InlineData("freeze_vision_tower: true", "freeze_vision_tower is not supported: SharpTune trains text-only models")]
    [InlineData("video_fps: 2.0", "video_fps is not supported: SharpTune trains text-only models")]
    [InlineData("ray_num_workers: 4", "ray_num_workers is not supported: Ray distributed training is not available")]
    [InlineData("export_legacy_format: true", "export_legacy_format is not supported: SharpTune writes safetensors only, not pytorch_model.bin")]
    [InlineData("export_quantization_bit: 4", "export_quantization_bit is not supported: ")]
    [InlineData("export_hub_model_id: me/model", "export_hub_model_id is not supported: SharpTune does not upload to the Hugging Face Hub")]
    [InlineData("infer_backend: vllm", "infer_backend is not supported: ")]
    public void UnsupportedFeaturesStopWithTheReason(string yaml, string messageStart) => Assert.StartsWith(messageStart, Error(Model + yaml));

    [Fact]
    public void UnsupportedFeatureIsReportedBeforeOtherValueErrors() =>
        Assert.StartsWith("use_galore is not supported", Error(Model + "lora_rank: eight\nuse_galore: true"));

    [Fact]
    public void UnsupportedKeysAtTheirInertValueAreAccepted()
    {
        var c = Parse(Model + "use_dora: false\ndeepspeed: null\nquantization_bit: null\nquantization_method: bnb\nmix_strategy: concat\n" +
            "infer_backend: huggingface\nexport_legacy_format: false\nneat_packing: false\noptim: adamw_torch\nray_num_workers: 1\nstreaming: false\n");
        Assert.Empty(c.Notes);
    }

    [Fact]
    public void HarmlessKeysAddNotes()
    {
        var c = Parse(Model + "report_to: wandb\nbf16: true\nfp16: true\nddp_timeout: 180000000\nflash_attn: fa2\nrun_name: test\n" +
            "export_device: auto\nlength_penalty: 1.2\n");
        Assert.Equal(
        [
            "report_to is ignored: SharpTune has no experiment-tracker integrations",
            "fp16 is ignored: SharpTune trains in fp32 master weights on CPU",
            "ddp_timeout is ignored: Open MPI's collectives have no timeout to set; a failing rank stops the whole run (docs/distributed.md)",
            "flash_attn is ignored: SharpTune uses its own attention kernel",
            "run_name is ignored: run names are only used by experiment trackers",
            "export_device is ignored: merging always runs on the CPU",
            "length_penalty is ignored: it only applies to beam search",
        ], c.Notes);
        Assert.True(c.Training.Bf16);
        Assert.False(Parse(Model).Training.Bf16);
        Assert.Empty(Parse(Model + "report_to: none\nbf16: false\nflash_attn: auto\ntrust_remote_code: false\n").Notes);
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("disable_gradient_checkpointing: true", false)]
    [InlineData("disable_gradient_checkpointing: false", true)]
    [InlineData("gradient_checkpointing: false", true)]
    [InlineData("disable_gradient_checkpointing: true\ngradient_checkpointing: true", true)]
    public void GradientCheckpointingIsOnUnlessDisabled(string yaml, bool expected) =>
        Assert.Equal(expected, Parse(Model + yaml).Training.GradientCheckpointing);

    [Fact]
    public void EvaluationStrategyIsTheOldNameOfEvalStrategy()
    {
        var c = Parse(Training + "val_size: 0.1\nlogging_steps: 10\nevaluation_strategy: steps\n");
        Assert.Equal("steps", c.Training.EvalStrategy);
        Assert.True(c.Training.DoEval); // transformers turns evaluation on with any strategy but "no"
        Assert.Equal(10, c.Training.EvalSteps); // and defaults eval_steps to logging_steps
        Assert.Equal(["evaluation_strategy is the old name of eval_strategy"], c.Notes);

        Assert.Equal("epoch", Parse(Training + "val_size: 0.1\nevaluation_strategy: steps\n", "eval_strategy=epoch").Training.EvalStrategy);
        Assert.Equal(250, Parse(Training + "val_size: 0.1\neval_strategy: steps\neval_steps: 250.0\n").Training.EvalSteps);
    }

    [Fact]
    public void PackingLowersCutoffLenByOneAsLlamaFactoryDoes()
    {
        Assert.Equal(1023, Parse(Model + "cutoff_len: 1024\npacking: true\n").Data.CutoffLen);
        Assert.Equal(1024, Parse(Model + "cutoff_len: 1024\npacking: null\n").Data.CutoffLen);
    }

    [Theory]
    [InlineData("resume_from_checkpoint: null", null, false)]
    [InlineData("resume_from_checkpoint: false", null, false)]
    [InlineData("resume_from_checkpoint: true", null, true)]
    [InlineData("resume_from_checkpoint: out/checkpoint-500", "out/checkpoint-500", false)]
    public void ResumeFromCheckpoint(string yaml, string? folder, bool latest)
    {
        var t = Parse(Model + yaml).Training;
        Assert.Equal(folder is null ? null : Path.GetFullPath(folder, Path.GetTempPath()), t.ResumeFromCheckpoint);
        Assert.Equal(latest, t.ResumeFromLatestCheckpoint);
    }

    [Fact]
    public void FinetuningTypesAndSharpTuneKeys()
    {
        var c = Parse(Model + "finetuning_type: freeze\nfreeze_trainable_layers: -4\nfreeze_trainable_modules: mlp,self_attn\nfreeze_extra_modules: embed_tokens\nskip_invalid_records: true\n");
        Assert.Equal(FinetuningType.Freeze, c.Finetuning.FinetuningType);
        Assert.Equal(-4, c.Finetuning.FreezeTrainableLayers);
        Assert.Equal(["mlp", "self_attn"], c.Finetuning.FreezeTrainableModules);
        Assert.Equal(["embed_tokens"], c.Finetuning.FreezeExtraModules);
        Assert.True(c.Data.SkipInvalidRecords);
        Assert.Equal(FinetuningType.Full, Parse(Model + "finetuning_type: full").Finetuning.FinetuningType);
    }

    [Theory]
    [InlineData(0, 0.1, 100, 10)]
    [InlineData(0, 0.1, 95, 10)] // ceil(9.5)
    [InlineData(7, 0.1, 100, 7)] // warmup_steps wins when positive
    [InlineData(0, 0.0, 100, 0)]
    public void WarmupStepsFollowTransformers(int warmupSteps, double warmupRatio, int total, int expected)
    {
        var t = Parse(Model + $"warmup_steps: {warmupSteps}\nwarmup_ratio: {warmupRatio:R}\n").Training;
        Assert.Equal(expected, t.WarmupStepsFor(total));
    }

    [Fact]
    public void InvalidYamlIsOneLine() => Assert.StartsWith("config is not valid YAML: ", Error("model_name_or_path: [unclosed\n"));

    [Fact]
    public void RootMustBeAMapping() => Assert.Equal("config is not a mapping of keys to values", Error("- a\n- b\n"));
}
