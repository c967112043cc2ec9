using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Workflows;

namespace SharpTune.Tests.Workflows;

/// <summary>
/// Stage rm end to end on the tiny model and LLaMA-Factory's dpo_en_demo pairs: a LoRA adapter and a value head trained
/// by the pairwise loss, saved as LLaMA-Factory saves them, resumable bit for bit, evaluated, predicted, scored, exported
/// and compared.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class RewardModelStageTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private static string LlamaFactoryData => TestPaths.Fixtures("llamafactory");

    private string Config(string name, string outputDir, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, outputDir, [("stage", "rm"), ("dataset", "dpo_en_demo"), ("dataset_dir", LlamaFactoryData), ("max_samples", 8),
            ("cutoff_len", 48), ("learning_rate", 5.0e-3), ("lora_dropout", 0.1), .. keys]);

    private static WorkflowRun Run(string config, params string[] overrides)
    {
        var recorder = new RecordingObserver();
        var result = TrainingWorkflow.Run(new TrainingRequest(SftConfig.Load(config, overrides, ConfigUse.Train), SkipMemoryCheck: true), CancellationToken.None, recorder);
        return new WorkflowRun(result, recorder.Events);
    }

    private string Trained(string name)
    {
        string output = tiny.PathFor(name);
        if (!File.Exists(Path.Combine(output, ValueHead.FileName))) Run(Config(name, output));
        return output;
    }

    [Fact]
    public void Trains_an_adapter_and_a_value_head_saved_as_llamafactory_saves_them()
    {
        string output = Trained("rm");
        foreach (string dir in new[] { output, Path.Combine(output, "checkpoint-3"), Path.Combine(output, "checkpoint-6") })
        {
            Assert.True(File.Exists(Path.Combine(dir, "adapter_model.safetensors")), dir);
            using var head = SafetensorsFile.Open(Path.Combine(dir, ValueHead.FileName));
            Assert.Equal(["v_head.summary.bias", "v_head.summary.weight"], head.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            Assert.Equal("pt", head.Metadata["format"]);
        }
        int hidden = ModelConfig.Load(Path.Combine(tiny.ModelDir, "config.json")).HiddenSize;
        using (var head = SafetensorsFile.Open(Path.Combine(output, ValueHead.FileName)))
            Assert.Equal([1L, hidden], head.Get(ValueHead.WeightName).Shape);

        // Every logged step carries the pairwise accuracy beside the loss; the loss falls on these 8 pairs.
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "trainer_state.json")));
        var steps = state.RootElement.GetProperty("log_history").EnumerateArray().Where(e => e.TryGetProperty("loss", out _)).ToList();
        Assert.Equal(6, steps.Count);
        Assert.All(steps, e => Assert.InRange(e.GetProperty("accuracy").GetDouble(), 0, 1));
        Assert.True(steps[^1].GetProperty("loss").GetDouble() < steps[0].GetProperty("loss").GetDouble(),
            $"loss {steps[0].GetProperty("loss")} → {steps[^1].GetProperty("loss")}");
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
    }

    [Fact]
    public void Resuming_from_a_checkpoint_continues_the_same_run_value_head_included()
    {
        string whole = Trained("rm-whole");
        string continued = tiny.PathFor("rm-continued");
        var r = Run(Config("rm-continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", r.Notes);
        foreach (string file in new[] { "adapter_model.safetensors", ValueHead.FileName })
            Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, file)), TinyModelFixture.TensorBytes(Path.Combine(continued, file)));
    }

    [Fact]
    public void Eval_and_predict_report_accuracy_and_write_the_pair_scores()
    {
        string adapter = Trained("rm");
        string evalDir = tiny.PathFor("rm-eval");
        var eval = Run(Config("rm-eval", evalDir, ("do_train", false), ("do_eval", true), ("val_size", 0.5), ("adapter_name_or_path", adapter)));
        Assert.Equal("eval", eval.Result.Task);
        using (var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalDir, "eval_results.json"))))
        {
            Assert.InRange(results.RootElement.GetProperty("eval_accuracy").GetDouble(), 0, 1);
            Assert.True(results.RootElement.GetProperty("eval_loss").GetDouble() > 0);
            Assert.False(results.RootElement.TryGetProperty("perplexity", out _));
        }

        string predictDir = tiny.PathFor("rm-predict");
        Run(Config("rm-predict", predictDir, ("do_train", false), ("do_predict", true), ("val_size", 0.5), ("adapter_name_or_path", adapter)));
        string[] lines = File.ReadAllText(Path.Combine(predictDir, "generated_predictions.jsonl")).Split('\n');
        Assert.Equal(4, lines.Length);
        foreach (string line in lines)
        {
            using var pair = JsonDocument.Parse(line);
            Assert.Equal(["chosen", "rejected"], pair.RootElement.EnumerateObject().Select(p => p.Name));
            double chosen = pair.RootElement.GetProperty("chosen").GetDouble();
            Assert.Equal(Math.Round(chosen, 2), chosen);
        }
        using var predicted = JsonDocument.Parse(File.ReadAllText(Path.Combine(predictDir, "predict_results.json")));
        Assert.InRange(predicted.RootElement.GetProperty("predict_accuracy").GetDouble(), 0, 1);
        // The same eval split scored by eval and predict: the same mean loss.
        using var evaluated = JsonDocument.Parse(File.ReadAllText(Path.Combine(evalDir, "eval_results.json")));
        Assert.Equal(evaluated.RootElement.GetProperty("eval_loss").GetDouble(), predicted.RootElement.GetProperty("predict_loss").GetDouble(), 6);
    }

    [Fact]
    public void The_trained_reward_model_scores_responses_and_exports_and_compares_as_an_adapter()
    {
        string adapter = Trained("rm");
        string records = tiny.PathFor("rm-records.json");
        File.WriteAllText(records, """[{"instruction": "Hi", "output": "Hello there."}, {"instruction": "Hi", "output": "Go away."}]""");
        var scored = CliRunner.Run("score", "--model", tiny.ModelDir, "--adapter", adapter, "--input", records, "--template", "qwen");
        Assert.True(scored.ExitCode == 0, scored.Stderr);
        Assert.Equal(2, scored.Stdout.Trim().Split('\n').Length);
        Assert.Contains(Path.Combine(adapter, ValueHead.FileName), scored.Stderr);

        // As LLaMA-Factory exports a reward model: the merged weights, and the value head copied beside them.
        string exportDir = tiny.PathFor("rm-export");
        var cfg = SftConfig.Load(tiny.WriteConfig("rm-export", tiny.PathFor("unused-rm"),
            ("do_train", null), ("dataset", null), ("adapter_name_or_path", adapter), ("export_dir", exportDir), ("stage", "rm")), [], ConfigUse.Export);
        var written = ExportWorkflow.Run(cfg, CancellationToken.None, RunObservers.None);
        Assert.Contains(ValueHead.FileName, written);
        Assert.Equal(File.ReadAllBytes(Path.Combine(adapter, ValueHead.FileName)), File.ReadAllBytes(Path.Combine(exportDir, ValueHead.FileName)));
        using (var merged = SafetensorsCheckpoint.OpenDirectory(exportDir))
            Assert.DoesNotContain(merged.Names, n => n.StartsWith("v_head", StringComparison.Ordinal));
        // The exported folder is a full reward model: scoring it alone gives the adapter's scores, up to the merged
        // weights being stored in the tiny model's bf16 (a relative rounding of 2^-9 per weight).
        var fromExport = CliRunner.Run("score", "--model", exportDir, "--input", records, "--template", "qwen");
        Assert.True(fromExport.ExitCode == 0, fromExport.Stderr);
        var adapterScores = scored.Stdout.Trim().Split('\n').Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble()).ToList();
        var exportScores = fromExport.Stdout.Trim().Split('\n').Select(l => JsonDocument.Parse(l).RootElement.GetProperty("score").GetDouble()).ToList();
        for (int i = 0; i < 2; i++) Assert.InRange(exportScores[i], adapterScores[i] - 0.05, adapterScores[i] + 0.05);

        string questions = tiny.PathFor("rm-questions.txt");
        File.WriteAllLines(questions, ["Hello"]);
        var compared = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", adapter, "--questions", questions, "--template", "qwen",
            "--max-new-tokens", "4", "--out", tiny.PathFor("rm-compare"));
        Assert.True(compared.ExitCode == 0, compared.Stderr);
    }
}
