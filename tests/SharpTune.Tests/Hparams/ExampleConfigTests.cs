using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>
/// LLaMA-Factory's own example configs (tests/fixtures/llamafactory/examples), loaded as `sharptune train/export/chat`
/// would with the model, adapter and dataset folders pointed at local fixtures.
/// </summary>
public sealed class ExampleConfigTests
{
    private static readonly string ExamplesDir = TestPaths.Fixtures("llamafactory", "examples");

    /// <summary>Example → the key its error names, or null when it loads.</summary>
    public static TheoryData<string, string?> Examples => new()
    {
        { "train_lora/qwen3_lora_sft.yaml", null },
        { "train_lora/qwen3_lora_sft_ds3.yaml", null }, // deepspeed is a no-op in one process (a note)
        { "train_lora/qwen3_lora_sft_ray.yaml", "ray_num_workers" },
        { "train_lora/qwen3vl_lora_sft.yaml", "image_max_pixels" },
        { "train_lora/mossvl_lora_sft.yaml", "image_max_pixels" },
        // The alignment stages' configs load (the stages themselves are TrainingWorkflow's, see AlignmentConfigTests).
        { "train_lora/qwen3_lora_dpo.yaml", null },
        { "train_lora/qwen3_lora_kto.yaml", null },
        { "train_lora/qwen3_lora_reward.yaml", null },
        { "train_lora/llama3_lora_ppo.yaml", null },
        { "train_full/qwen3_full_sft.yaml", null },
        { "train_full/qwen3vl_full_sft.yaml", "image_max_pixels" },
        { "train_full/mossvl_full_sft.yaml", "image_max_pixels" },
        // Pre-quantized checkpoints: with a local unquantized model these are plain LoRA configs (see QuantizedCheckpoint).
        { "train_qlora/llama3_lora_sft_aqlm.yaml", null },
        { "train_qlora/llama3_lora_sft_awq.yaml", null },
        { "train_qlora/llama3_lora_sft_gptq.yaml", null },
        { "train_qlora/qwen3_lora_sft_otfq.yaml", null },
        { "train_qlora/qwen3_lora_sft_bnb_npu.yaml", null },
        { "merge_lora/qwen3_lora_sft.yaml", null },
        { "merge_lora/qwen3_full_sft.yaml", null },
        { "merge_lora/qwen3_gptq.yaml", "export_quantization_bit" },
        { "merge_lora/qwen3vl_lora_sft.yaml", "template" },
        { "merge_lora/mossvl_lora_sft.yaml", "template" },
        { "inference/qwen3.yaml", null },
        { "inference/qwen3_lora_sft.yaml", null },
        { "inference/qwen3_full_sft.yaml", null },
        { "inference/qwen3vl.yaml", "template" },
        { "inference/mossvl.yaml", "template" },
    };

    [Theory]
    [MemberData(nameof(Examples))]
    public void LoadsOrNamesTheBlockingKey(string example, string? blockingKey)
    {
        string path = Path.Combine(ExamplesDir, example);
        var use = example.Split('/')[0] switch
        {
            "merge_lora" => ConfigUse.Export,
            "inference" => ConfigUse.Chat,
            _ => ConfigUse.Train,
        };
        var overrides = LocalFolders(File.ReadAllText(path));

        if (blockingKey is null)
        {
            var config = SftConfig.Load(path, overrides, use);
            Assert.Equal(TestPaths.Fixtures("qwen2-small-vocab"), config.Model.ModelNameOrPath);
        }
        else
        {
            var e = Assert.Throws<ConfigException>(() => SftConfig.Load(path, overrides, use));
            Assert.StartsWith(blockingKey, e.Message);
            Assert.Contains(Path.GetFileName(example), e.Message);
        }
    }

    [Fact]
    public void EveryExampleIsListed()
    {
        var onDisk = Directory.GetFiles(ExamplesDir, "*.yaml", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(ExamplesDir, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal);
        var listed = Examples.Select(row => (string)row[0]!).Order(StringComparer.Ordinal);
        Assert.Equal(onDisk, listed);
    }

    [Fact]
    public void Qwen3LoraSftValues()
    {
        string workingDirectory = Path.GetTempPath();
        var config = SftConfig.Parse(File.ReadAllText(Path.Combine(ExamplesDir, "train_lora", "qwen3_lora_sft.yaml")), workingDirectory: workingDirectory);

        Assert.Equal("Qwen/Qwen3-4B-Instruct-2507", config.Model.ModelNameOrPath); // a Hub id stays as written
        Assert.Equal("sft", config.Finetuning.Stage);
        Assert.True(config.Training.DoTrain);
        Assert.Equal(FinetuningType.Lora, config.Finetuning.FinetuningType);
        Assert.Equal(8, config.Finetuning.LoraRank);
        Assert.Null(config.Finetuning.LoraAlpha);
        Assert.Equal(16, config.Finetuning.EffectiveLoraAlpha);
        Assert.Equal(["all"], config.Finetuning.LoraTarget);
        Assert.Equal(["identity", "alpaca_en_demo"], config.Data.Dataset);
        Assert.Equal("qwen3_nothink", config.Data.Template);
        Assert.Equal(2048, config.Data.CutoffLen);
        Assert.Equal(1000, config.Data.MaxSamples);
        Assert.Equal(Path.Combine(workingDirectory, "data"), config.Data.DatasetDir);
        Assert.Equal(Path.Combine(workingDirectory, "saves", "qwen3-4b", "lora", "sft"), config.Training.OutputDir);
        Assert.Equal(10, config.Training.LoggingSteps);
        Assert.Equal(500, config.Training.SaveSteps);
        Assert.True(config.Finetuning.PlotLoss);
        Assert.True(config.Training.OverwriteOutputDir);
        Assert.Equal(1, config.Training.PerDeviceTrainBatchSize);
        Assert.Equal(8, config.Training.GradientAccumulationSteps);
        Assert.Equal(1.0e-4, config.Training.LearningRate);
        Assert.Equal(3.0, config.Training.NumTrainEpochs);
        Assert.Equal("cosine", config.Training.LrSchedulerType);
        Assert.Equal(0.1, config.Training.WarmupRatio);
        Assert.Null(config.Training.ResumeFromCheckpoint);
        Assert.False(config.Training.ResumeFromLatestCheckpoint);
        Assert.True(config.Training.GradientCheckpointing);
        Assert.False(config.Training.DoEval);
        Assert.True(config.Training.Bf16);

        Assert.Equal(
        [
            "trust_remote_code is ignored: SharpTune runs no model code from model folders",
            "preprocessing_num_workers is ignored: SharpTune tokenizes in-process",
            "dataloader_num_workers is ignored: SharpTune loads batches in-process",
            "ddp_timeout is ignored: Open MPI's collectives have no timeout to set; a failing rank stops the whole run (docs/distributed.md)",
        ], config.Notes);
    }

    [Fact]
    public void MergeConfigValues()
    {
        string workingDirectory = Path.GetTempPath();
        var config = SftConfig.Parse(File.ReadAllText(Path.Combine(ExamplesDir, "merge_lora", "qwen3_lora_sft.yaml")), workingDirectory: workingDirectory);
        Assert.Equal(["saves/qwen3-4b/lora/sft"], config.Model.AdapterNameOrPath); // no such local folder: kept as written
        Assert.Equal(Path.Combine(workingDirectory, "saves", "qwen3_sft_merged"), config.Export.ExportDir);
        Assert.Equal(5, config.Export.ExportSize);
        Assert.False(config.Training.DoTrain);
        Assert.Equal(["trust_remote_code is ignored: SharpTune runs no model code from model folders"], config.Notes);
    }

    /// <summary>The model, adapter and dataset folders of a config, pointed at local fixtures.</summary>
    private static List<string> LocalFolders(string yaml)
    {
        var overrides = new List<string>
        {
            $"model_name_or_path={TestPaths.Fixtures("qwen2-small-vocab")}",
            $"dataset_dir={TestPaths.Fixtures("llamafactory")}",
        };
        if (yaml.Contains("adapter_name_or_path:")) overrides.Add($"adapter_name_or_path={TestPaths.Fixtures("lora")}");
        // A LoRA reward model is an adapter folder.
        if (yaml.Contains("reward_model:")) overrides.Add($"reward_model={TestPaths.Fixtures("lora")}");
        return overrides;
    }
}
