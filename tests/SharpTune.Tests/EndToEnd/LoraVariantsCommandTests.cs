using System.Text.Json;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Workflows;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// DoRA and PiSSA configs from YAML on the tiny model: train, resume from a checkpoint to the same adapter, chat with
/// the adapter, compare, and export the merge, which generates what the unmerged adapter generates.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class LoraVariantsCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    public static TheoryData<string> Variants => new() { "dora", "pissa" };

    private static (string Key, object? Value)[] Keys(string variant) => variant == "dora"
        ? [("use_dora", true), ("loraplus_lr_ratio", 4)]
        : [("pissa_init", true), ("pissa_iter", 2), ("pissa_convert", true), ("lora_target", "q_proj,v_proj,down_proj")];

    [Theory]
    [MemberData(nameof(Variants))]
    public void TrainResumeChatCompareAndExport(string variant)
    {
        string whole = tiny.PathFor($"{variant}-whole");
        var run = TinyModelFixture.RunTraining(tiny.WriteConfig($"{variant}-whole", whole, Keys(variant)));
        Assert.Equal([1, 2, 3, 4, 5, 6], run.Steps);
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(whole, "adapter_config.json"))))
        {
            var root = config.RootElement;
            Assert.Equal(variant == "dora", root.GetProperty("use_dora").GetBoolean());
            if (variant == "pissa") Assert.Equal("pissa_niter_2", root.GetProperty("init_lora_weights").GetString());
        }
        if (variant == "dora") Assert.Contains("LoRA+: lora_B and 1-D parameters at learning_rate × 4", run.Notes);

        // Resumed from checkpoint-3 into another folder: the same final adapter, byte for byte.
        string continued = tiny.PathFor($"{variant}-continued");
        var resumed = TinyModelFixture.RunTraining(tiny.WriteConfig($"{variant}-continued", continued, Keys(variant)),
            $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Equal([4, 5, 6], resumed.Steps);
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));

        int[] adapted = TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", whole);
        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), adapted);
        if (variant == "pissa")
            Assert.Equal(adapted, TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", Path.Combine(whole, "pissa_converted")));

        string questions = tiny.PathFor($"{variant}-questions.txt");
        File.WriteAllLines(questions, ["Who are you?", "Hello"]);
        var compared = CompareWorkflow.Run(new CompareRequest(tiny.ModelDir, [whole], questions, [], TinyModelFixture.BundledData, null, "qwen", null,
            BatchSize: 2, tiny.PathFor($"{variant}-compare"), null, o => o with { MaxNewTokens = 4 }), CancellationToken.None, new RecordingObserver());
        Assert.Equal(2, compared.Columns.Count);
        Assert.All(compared.Columns, c => Assert.Equal(2, c.Answers.Count));

        string exportDir = tiny.PathFor($"{variant}-merged");
        string exportConfig = Path.Combine(tiny.Root, $"{variant}-export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(whole)}
            template: qwen
            finetuning_type: lora
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);
        var exported = CliRunner.Run("export", exportConfig);
        Assert.True(exported.ExitCode == 0, exported.Stderr);
        Assert.Equal(adapted, TinyModelFixture.GreedyIds(exportDir, "Who are you?"));
    }
}
