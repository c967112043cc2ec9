using System.Text.Json;
using SharpTune.Peft;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// finetuning_type ia3 from YAML on the tiny model: trains and saves a PEFT IA3 folder, resumes exactly from a
/// checkpoint, serves it unmerged in generate and compare, and exports a merged model that generates the same.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class Ia3TrainingTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Config(string name, string outputDir) => tiny.WriteConfig(name, outputDir,
        ("finetuning_type", "ia3"), ("lora_rank", null), ("lora_target", null), ("learning_rate", 0.1));

    [Fact]
    public void Trains_resumes_serves_and_exports_an_ia3_adapter()
    {
        string whole = tiny.PathFor("ia3-whole");
        var run = TinyModelFixture.RunTraining(Config("ia3-whole", whole));
        // Qwen2 tiny: per layer q_proj and v_proj scale their outputs (hidden and kv width), down_proj its input (intermediate).
        Assert.Contains(run.Notes, n => n.StartsWith("ia3: trainable params: ", StringComparison.Ordinal));
        Assert.Equal("IA3", PeftAdapterFolders.PeftType(whole));
        using (var config = TinyModelFixture.ReadJson(Path.Combine(whole, "adapter_config.json")))
        {
            Assert.Equal(["down_proj", "q_proj", "v_proj"], config.RootElement.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(["down_proj"], config.RootElement.GetProperty("feedforward_modules").EnumerateArray().Select(e => e.GetString()));
        }

        string continued = tiny.PathFor("ia3-continued");
        var resumed = TinyModelFixture.RunTraining(Config("ia3-continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", resumed.Notes);
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));

        int[] unmerged = TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", whole);
        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), unmerged);

        string report = tiny.PathFor("ia3-compare");
        var compare = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", whole, "--dataset", "identity",
            "--dataset-dir", TinyModelFixture.BundledData, "--max-samples", "2", "--max-new-tokens", "8", "--out", report);
        Assert.True(compare.ExitCode == 0, compare.Stderr);
        Assert.Contains("| **ia3-whole** |", File.ReadAllText(Path.Combine(report, "compare.md")));

        string exportDir = tiny.PathFor("ia3-merged");
        string exportConfig = Path.Combine(tiny.Root, "ia3-export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(whole)}
            template: qwen
            finetuning_type: ia3
            export_dir: {JsonSerializer.Serialize(exportDir)}
            """);
        var export = CliRunner.Run("export", exportConfig);
        Assert.True(export.ExitCode == 0, export.Stderr);
        var before = TinyModelFixture.TensorBytes(Path.Combine(tiny.ModelDir, "model.safetensors"));
        var after = TinyModelFixture.TensorBytes(Path.Combine(exportDir, "model.safetensors"));
        var changed = before.Keys.Where(n => !before[n].AsSpan().SequenceEqual(after[n])).Order(StringComparer.Ordinal).ToArray();
        // The tiny model's biases are zeros, which scaling leaves as they are (Ia3Tests checks a scaled bias).
        Assert.Equal(before.Keys.Where(n => n.EndsWith("q_proj.weight", StringComparison.Ordinal) || n.EndsWith("v_proj.weight", StringComparison.Ordinal)
            || n.EndsWith("down_proj.weight", StringComparison.Ordinal)).Order(StringComparer.Ordinal), changed);
        Assert.Equal(unmerged, TinyModelFixture.GreedyIds(exportDir, "Who are you?"));
    }
}
