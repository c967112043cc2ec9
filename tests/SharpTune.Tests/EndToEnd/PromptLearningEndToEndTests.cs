using System.Text.Json;
using SharpTune.Data;
using SharpTune.Tests.Cli;
using SharpTune.Training.Model;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// A config of each prompt-learning type run from YAML on the tiny model: train, resume from a checkpoint (the same
/// adapter bit for bit), chat and compare with the adapter, and export refused with the reason.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class PromptLearningEndToEndTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    public static TheoryData<string, string, (string, object?)[]> Configs => new()
    {
        { "prompt-text", "PROMPT_TUNING", [("finetuning_type", "prompt_tuning"), ("num_virtual_tokens", 6), ("prompt_tuning_init", "TEXT"), ("prompt_tuning_init_text", "You are TuneBot."), ("bf16", true)] },
        { "ptuning-lstm", "P_TUNING", [("finetuning_type", "p_tuning"), ("num_virtual_tokens", 4), ("encoder_reparameterization_type", "LSTM"), ("encoder_hidden_size", 16), ("encoder_dropout", 0.1)] },
        { "prefix-projection", "PREFIX_TUNING", [("finetuning_type", "prefix_tuning"), ("num_virtual_tokens", 4), ("prefix_projection", true), ("encoder_hidden_size", 16), ("gradient_checkpointing", true)] },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void TrainResumeChatCompare_AndExportRefuses(string name, string peftType, (string, object?)[] keys)
    {
        (string, object?)[] all = [("lora_rank", null), ("lora_target", null), .. keys];
        string whole = tiny.PathFor(name);
        var run = TinyModelFixture.RunTraining(tiny.WriteConfig(name, whole, all));
        Assert.Contains(run.Notes, n => n.Contains("trainable params: ", StringComparison.Ordinal));
        using (var config = TinyModelFixture.ReadJson(Path.Combine(whole, "adapter_config.json")))
        {
            Assert.Equal(peftType, config.RootElement.GetProperty("peft_type").GetString());
            // The tiny model has 4 heads, 2 kv heads of 16: a prefix is stored per kv head, as PEFT does for grouped-query models.
            bool prefix = peftType == "PREFIX_TUNING";
            Assert.Equal(prefix ? 32 : 64, config.RootElement.GetProperty("token_dim").GetInt32());
            Assert.Equal(prefix ? 2 : 4, config.RootElement.GetProperty("num_attention_heads").GetInt32());
        }
        // Served, the saved folder computes what the training forward computes with it.
        int[][] ids = [[9707, 11, 1246, 525, 498, 30]];
        int[][] mask = [[1, 1, 1, 1, 1, 1]];
        using (var trained = DecoderModel.Load(tiny.ModelDir, gradientCheckpointing: false))
        using (var served = DecoderModel.LoadForGeneration(tiny.ModelDir, adapterDirectories: [whole]))
        {
            trained.LoadAdapter(whole);
            var expected = trained.Logits(new TrainingBatch(1, 6, ids[0], mask[0], Enumerable.Repeat(-100, 6).ToArray()));
            var logits = served.Evaluate(ids, mask).Logits;
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - logits[i]) <= 1e-4 + 1e-4 * Math.Abs(expected[i]), $"logit {i}: training {expected[i]}, served {logits[i]}");
        }
        var losses = TinyModelFixture.TrainerLog(whole).Where(l => l.Loss is not null).Select(l => l.Loss!.Value).ToList();
        Assert.True(losses[^1] < losses[0], $"loss went from {losses[0]} to {losses[^1]}");

        string continued = tiny.PathFor(name + "-resumed");
        TinyModelFixture.RunTraining(tiny.WriteConfig(name + "-resumed", continued, all), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));

        Assert.NotEmpty(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", whole));
        // Evaluation and prediction with the adapter (its finetuning_type named, as LLaMA-Factory's configs do).
        (string, object?)[] evaluation = [.. all, ("do_train", false), ("dataset", null), ("eval_dataset", "identity"), ("adapter_name_or_path", whole),
            ("max_samples", 2), ("per_device_eval_batch_size", 2)];
        string evaluated = tiny.PathFor(name + "-eval");
        TinyModelFixture.RunTraining(tiny.WriteConfig(name + "-eval", evaluated, [.. evaluation, ("do_eval", true)]));
        using (var results = TinyModelFixture.ReadJson(Path.Combine(evaluated, "eval_results.json")))
            Assert.True(double.IsFinite(results.RootElement.GetProperty("eval_loss").GetDouble()));
        string predicted = tiny.PathFor(name + "-predict");
        TinyModelFixture.RunTraining(tiny.WriteConfig(name + "-predict", predicted,
            [.. evaluation, ("do_predict", true), ("predict_with_generate", true), ("do_sample", false), ("max_new_tokens", 6)]));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(predicted, "generated_predictions.jsonl")).Length);

        string report = tiny.PathFor(name + "-compare");
        var compare = CliRunner.Run("compare", "--model", tiny.ModelDir, "--adapter", whole, "--dataset", "identity",
            "--dataset-dir", TinyModelFixture.BundledData, "--max-samples", "2", "--max-new-tokens", "8", "--out", report);
        Assert.True(compare.ExitCode == 0, compare.Stderr);
        Assert.True(File.Exists(Path.Combine(report, "compare.md")));

        string exportConfig = Path.Combine(tiny.Root, name + "-export.yaml");
        File.WriteAllText(exportConfig, $"""
            model_name_or_path: {JsonSerializer.Serialize(tiny.ModelDir)}
            adapter_name_or_path: {JsonSerializer.Serialize(whole)}
            finetuning_type: {keys[0].Item2}
            template: qwen
            export_dir: {JsonSerializer.Serialize(tiny.PathFor(name + "-export"))}
            """);
        var export = CliRunner.Run("export", exportConfig);
        Assert.Equal(1, export.ExitCode);
        Assert.Contains($"a {peftType} adapter cannot be exported", export.Stderr);
        Assert.Contains("not a change to any weight", export.Stderr);
        Assert.False(Directory.Exists(tiny.PathFor(name + "-export")));
    }
}
