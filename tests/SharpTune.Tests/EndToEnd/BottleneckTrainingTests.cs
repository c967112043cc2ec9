using System.Text.Json;
using SharpTune.Peft;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// finetuning_type adapter from YAML on the tiny model: trains Houlsby bottleneck adapters and saves the adapters
/// library's folder, resumes exactly from a checkpoint, serves it unmerged in generate and compare, and export
/// refuses it saying why.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class BottleneckTrainingTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Config(string name, string outputDir) => tiny.WriteConfig(name, outputDir,
        ("finetuning_type", "adapter"), ("lora_rank", null), ("lora_target", null), ("adapter_reduction_factor", 8), ("adapter_non_linearity", "relu"),
        ("learning_rate", 0.01));

    [Fact]
    public void Trains_resumes_serves_and_refuses_to_export_a_bottleneck_adapter()
    {
        string whole = tiny.PathFor("adapter-whole");
        var run = TinyModelFixture.RunTraining(Config("adapter-whole", whole));
        Assert.Contains(run.Notes, n => n.StartsWith("adapter: trainable params: ", StringComparison.Ordinal));
        Assert.Equal("ADAPTERS_BOTTLENECK", PeftAdapterFolders.PeftType(whole));
        Assert.True(File.Exists(Path.Combine(whole, "adapter.safetensors")));

        string continued = tiny.PathFor("adapter-continued");
        var resumed = TinyModelFixture.RunTraining(Config("adapter-continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", resumed.Notes);
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter.safetensors")));

        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", whole));

        string report = tiny.PathFor("adapter-compare");
        var compare = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", whole, "--dataset", "identity",
            "--dataset-dir", TinyModelFixture.BundledData, "--max-samples", "2", "--max-new-tokens", "8", "--out", report);
        Assert.True(compare.ExitCode == 0, compare.Stderr);
        Assert.Contains("| **adapter-whole** |", File.ReadAllText(Path.Combine(report, "compare.md")));

        string exportDir = tiny.PathFor("adapter-merged");
        string exportConfig = Path.Combine(tiny.Root, "adapter-export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(whole)}
            template: qwen
            finetuning_type: adapter
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);
        var export = CliRunner.Run("export", exportConfig);
        Assert.Equal(1, export.ExitCode);
        Assert.Contains("a bottleneck adapter cannot be merged into the model's weights", export.Stderr);
        Assert.False(Directory.Exists(exportDir));
    }
}
