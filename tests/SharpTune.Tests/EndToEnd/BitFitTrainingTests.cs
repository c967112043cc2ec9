using System.Text.Json;
using SharpTune.Peft;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// finetuning_type bitfit from YAML on the tiny model: trains the biases and the named norms, resumes exactly from a
/// checkpoint, serves the folder unmerged in generate and compare, and exports a merged model that generates the same.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class BitFitTrainingTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Config(string name, string outputDir) => tiny.WriteConfig(name, outputDir,
        ("finetuning_type", "bitfit"), ("lora_rank", null), ("lora_target", null), ("bitfit_extra_modules", "norm"), ("learning_rate", 0.05));

    [Fact]
    public void Trains_resumes_serves_and_exports_a_bitfit_folder()
    {
        string whole = tiny.PathFor("bitfit-whole");
        var run = TinyModelFixture.RunTraining(Config("bitfit-whole", whole));
        Assert.Contains(run.Notes, n => n.StartsWith("bitfit: trainable params: ", StringComparison.Ordinal));
        Assert.Equal("BITFIT", PeftAdapterFolders.PeftType(whole));
        var saved = TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors"));
        Assert.Contains("model.norm.weight", saved.Keys);
        Assert.All(saved.Keys.Where(k => k != "model.norm.weight"), k => Assert.EndsWith(".bias", k));

        string continued = tiny.PathFor("bitfit-continued");
        var resumed = TinyModelFixture.RunTraining(Config("bitfit-continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", resumed.Notes);
        Assert.Equal(saved, TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));

        int[] unmerged = TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", whole);
        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), unmerged);

        string report = tiny.PathFor("bitfit-compare");
        var compare = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", whole, "--dataset", "identity",
            "--dataset-dir", TinyModelFixture.BundledData, "--max-samples", "2", "--max-new-tokens", "8", "--out", report);
        Assert.True(compare.ExitCode == 0, compare.Stderr);
        Assert.Contains("| **bitfit-whole** |", File.ReadAllText(Path.Combine(report, "compare.md")));

        string exportDir = tiny.PathFor("bitfit-merged");
        string exportConfig = Path.Combine(tiny.Root, "bitfit-export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(whole)}
            template: qwen
            finetuning_type: bitfit
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);
        var export = CliRunner.Run("export", exportConfig);
        Assert.True(export.ExitCode == 0, export.Stderr);
        var before = TinyModelFixture.TensorBytes(Path.Combine(tiny.ModelDir, "model.safetensors"));
        var after = TinyModelFixture.TensorBytes(Path.Combine(exportDir, "model.safetensors"));
        Assert.Equal(saved.Keys.Order(StringComparer.Ordinal), before.Keys.Where(n => !before[n].AsSpan().SequenceEqual(after[n])).Order(StringComparer.Ordinal));
        Assert.Equal(unmerged, TinyModelFixture.GreedyIds(exportDir, "Who are you?"));
    }
}
