using System.Text.Json.Nodes;
using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>What <see cref="SftConfig.Validate"/> and <see cref="SftConfig.Load"/> check on the file system.</summary>
public sealed class ConfigValidationTests : IDisposable
{
    private static readonly string ModelDir = TestPaths.Fixtures("qwen2-small-vocab");
    private static readonly string DataDir = TestPaths.Fixtures("llamafactory");
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string TrainYaml(string model = "") =>
        $"model_name_or_path: {(model.Length == 0 ? ModelDir : model)}\ndo_train: true\ndataset: identity\ndataset_dir: {DataDir}\noutput_dir: {_dir}/out\n";

    private static string Error(string yaml, ConfigUse use, string? workingDirectory = null)
    {
        var e = Assert.ThrowsAny<Exception>(() => SftConfig.Parse(yaml, workingDirectory: workingDirectory).Validate(use));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void HubIdIsNotALocalFolder() =>
        Assert.StartsWith("model_name_or_path: 'Qwen/Qwen3-4B-Instruct-2507' is not a local folder nor a model in the Hugging Face cache (",
            Error(TrainYaml("Qwen/Qwen3-4B-Instruct-2507"), ConfigUse.Train, _dir));

    [Fact]
    public void RelativeModelFolderResolvesAgainstTheWorkingDirectory()
    {
        var config = SftConfig.Parse(TrainYaml("qwen2-small-vocab"), workingDirectory: TestPaths.Fixtures());
        Assert.Equal(ModelDir, config.Model.ModelNameOrPath);
        config.Validate(ConfigUse.Train);
    }

    [Fact]
    public void QuantizedCheckpointIsRefused()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir, "config.json")))!.AsObject();
        config["quantization_config"] = new JsonObject { ["quant_method"] = "gptq", ["bits"] = 4 };
        File.WriteAllText(Path.Combine(_dir, "config.json"), config.ToJsonString());
        File.Copy(Path.Combine(ModelDir, "model.safetensors"), Path.Combine(_dir, "model.safetensors"));

        Assert.Equal($"model_name_or_path: '{_dir}' is a quantized checkpoint (quant_method: gptq); SharpTune trains and merges unquantized bf16/fp16/fp32 checkpoints only",
            Error(TrainYaml(_dir), ConfigUse.Train));
    }

    [Fact]
    public void ModelFolderWithoutWeightsIsRefused() =>
        Assert.Contains("has no config.json", Error(TrainYaml(_dir), ConfigUse.Chat));

    [Fact]
    public void MissingAdapterFolder() =>
        Assert.Equal("adapter_name_or_path: 'saves/lora' is not a local folder nor a Hub id (ORG/NAME) to download",
            Error($"model_name_or_path: {ModelDir}\nadapter_name_or_path: saves/lora\n", ConfigUse.Chat, _dir));

    [Fact]
    public void TrainingNeedsSomethingToDo() =>
        Assert.Equal("none of do_train, do_eval and do_predict is true: nothing to do (set do_train: true)", Error($"model_name_or_path: {ModelDir}\n", ConfigUse.Train));

    [Fact]
    public void TrainingNeedsTheDatasetFolder() =>
        Assert.Equal($"dataset_dir: '{Path.Combine(_dir, "data")}' does not exist",
            Error($"model_name_or_path: {ModelDir}\ndo_train: true\ndataset: identity\noutput_dir: out\n", ConfigUse.Train, _dir));

    [Fact]
    public void ResumeCheckpointMustExist() =>
        Assert.Equal($"resume_from_checkpoint: '{Path.Combine(_dir, "out", "checkpoint-5")}' does not exist",
            Error(TrainYaml() + "resume_from_checkpoint: out/checkpoint-5\n", ConfigUse.Train, _dir));

    [Fact]
    public void ExportNeedsAnExportDirOtherThanTheModel()
    {
        Assert.Equal("export_dir: required for export", Error($"model_name_or_path: {ModelDir}\n", ConfigUse.Export));
        Assert.StartsWith("export_dir: ", Error($"model_name_or_path: {ModelDir}\nexport_dir: {ModelDir}/\n", ConfigUse.Export));
    }

    [Fact]
    public void LoadReadsTheFileAndAppliesOverrides()
    {
        string path = Path.Combine(_dir, "train.yaml");
        File.WriteAllText(path, TrainYaml() + "lora_rank: 4\n");
        var config = SftConfig.Load(path, ["lora_rank=12"], ConfigUse.Train);
        Assert.Equal(12, config.Finetuning.LoraRank);
        Assert.Equal(Path.Combine(_dir, "out"), config.Training.OutputDir);

        File.WriteAllText(path, TrainYaml() + "lora_rank: four\n");
        var e = Assert.Throws<ConfigException>(() => SftConfig.Load(path, [], ConfigUse.Train));
        Assert.Equal("lora_rank: expected an integer, got 'four' (line 6 of train.yaml)", e.Message);

        Assert.Throws<FileNotFoundException>(() => SftConfig.Load(Path.Combine(_dir, "missing.yaml"), [], ConfigUse.Train));
    }
}
