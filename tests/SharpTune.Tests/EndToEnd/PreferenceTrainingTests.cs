using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Hparams;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Workflows;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// `sharptune train` with stages dpo and kto on the tiny model: what they log and leave in output_dir, exact resume,
/// evaluation, and the refusals of what they cannot run.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class PreferenceTrainingTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private static readonly string[] DpoMetrics =
        ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"];

    /// <summary>
    /// A dataset folder with "pairs" (alpaca ranking: one habit to prefer, one to avoid, per prompt) and "feedback"
    /// (LLaMA-Factory's kto_en_demo, tagged sharegpt messages).
    /// </summary>
    private string DataDir()
    {
        string dir = tiny.PathFor("preference-data");
        if (Directory.Exists(dir)) return dir;
        Directory.CreateDirectory(dir);
        var pairs = Enumerable.Range(0, 16).Select(i => new
        {
            instruction = $"Question {i}: say something about the number {i * 7}.",
            chosen = $"Certainly! The number {i * 7} is a fine number.",
            rejected = "no no no no no no",
        });
        File.WriteAllText(Path.Combine(dir, "pairs.json"), JsonSerializer.Serialize(pairs));
        File.Copy(TestPaths.Fixtures("llamafactory", "kto_en_demo.json"), Path.Combine(dir, "kto_en_demo.json"));
        File.WriteAllText(Path.Combine(dir, "dataset_info.json"), """
            {
              "pairs": {"file_name": "pairs.json", "ranking": true, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
              "feedback": {"file_name": "kto_en_demo.json", "formatting": "sharegpt", "columns": {"messages": "messages", "kto_tag": "label"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
            }
            """);
        return dir;
    }

    private string DpoConfig(string name, string output, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, output, [("stage", "dpo"), ("dataset", "pairs"), ("dataset_dir", DataDir()), ("pref_beta", 0.1), ("learning_rate", 2e-2), .. keys]);

    private static List<JsonNode> LogHistory(string output)
    {
        using var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json"));
        return state.RootElement.GetProperty("log_history").EnumerateArray().Select(e => JsonNode.Parse(e.GetRawText())!).ToList();
    }

    [Fact]
    public void Dpo_run_raises_the_reward_accuracy_and_logs_llamafactory_metrics()
    {
        string output = tiny.PathFor("dpo");
        var r = TinyModelFixture.Train(DpoConfig("dpo", output, ("plot_loss", true), ("max_steps", 8), ("val_size", 0.25), ("eval_strategy", "steps"), ("eval_steps", 4)));
        Assert.Contains("reference model: the policy with its adapter disabled", r.Stderr);
        Assert.Contains(" | rewards/accuracies ", r.Stdout + r.Stderr);

        var history = LogHistory(output);
        var steps = history.Where(e => e["loss"] is not null).ToList();
        Assert.Equal(8, steps.Count);
        // trainer_state.json sorts its keys, as transformers writes it.
        foreach (var entry in steps)
            Assert.Equal(new[] { "loss", "grad_norm", "learning_rate", "epoch", "step" }.Concat(DpoMetrics).Order(StringComparer.Ordinal),
                entry.AsObject().Select(kv => kv.Key));
        // LoRA's B starts at zero, so at step 1 policy and reference agree: no margin, no pair ranked right.
        Assert.Equal(0, (double)steps[0]["rewards/accuracies"]!);
        Assert.Equal(0, (double)steps[0]["rewards/margins"]!, 6);
        Assert.Equal(Math.Log(2), (double)steps[0]["loss"]!, 3);
        Assert.True((double)steps[^1]["rewards/accuracies"]! > 0.5, $"rewards/accuracies: {string.Join(", ", steps.Select(s => s["rewards/accuracies"]))}");
        Assert.True((double)steps[^1]["rewards/margins"]! > 0);
        Assert.True((double)steps[^1]["loss"]! < Math.Log(2));

        var evaluations = history.Where(e => e["eval_loss"] is not null).ToList();
        Assert.Equal([4, 8], evaluations.Select(e => (int)e["step"]!));
        Assert.All(evaluations, e => Assert.All(DpoMetrics, key => Assert.NotNull(e["eval_" + key])));

        var log = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal((double)steps[^1]["rewards/accuracies"]!, (double)log.Last(l => l["loss"] is not null)["accuracy"]!);
        using (var results = TinyModelFixture.ReadJson(Path.Combine(output, "all_results.json")))
        {
            Assert.False(results.RootElement.TryGetProperty("perplexity", out _));
            Assert.True(results.RootElement.TryGetProperty("train_loss", out _));
        }
        foreach (string plot in new[] { "training_loss.png", "training_eval_loss.png", "training_rewards_accuracies.png" })
            Assert.True(File.Exists(Path.Combine(output, plot)), plot);
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
    }

    /// <summary>
    /// The demo's DPO step as shipped (examples/train_lora/tiny_identity_lora_dpo.yaml on data/identity_dpo), after a
    /// short run of the demo's SFT config: the policy continues the SFT adapter and the reference is the base with
    /// that adapter, so at step 1 the two agree (no margin, no pair ranked right) and the accuracy rises from there.
    /// Only paths (moved together, as the shipped configs relate them) and sizes are overridden.
    /// </summary>
    [Fact]
    public void The_demo_dpo_config_continues_the_sft_adapter_against_the_sft_model()
    {
        string sftConfig = Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", "tiny_identity_lora_sft.yaml");
        string dpoConfig = Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", "tiny_identity_lora_dpo.yaml");
        var shippedSft = SftConfig.Parse(File.ReadAllText(sftConfig), workingDirectory: TestPaths.RepoRoot);
        var shippedDpo = SftConfig.Parse(File.ReadAllText(dpoConfig), workingDirectory: TestPaths.RepoRoot);
        // The folders need not exist yet (a fresh clone has no demo/), so paths are compared as the repository root resolves them.
        static string Full(string? path) => Path.GetFullPath(path!, TestPaths.RepoRoot);
        Assert.Equal(Full(shippedSft.Model.ModelNameOrPath), Full(shippedDpo.Model.ModelNameOrPath));
        Assert.Equal(Full(shippedSft.Model.ModelNameOrPath), Full(shippedDpo.Finetuning.RefModel));
        Assert.Equal([Full(shippedSft.Training.OutputDir)], shippedDpo.Model.AdapterNameOrPath.Select(Full));
        Assert.Equal([Full(shippedSft.Training.OutputDir)], shippedDpo.Finetuning.RefModelAdapters.Select(Full));

        string sft = tiny.PathFor("demo-sft");
        string[] sizes = ["lora_rank=4", "cutoff_len=64", "max_samples=16", "per_device_train_batch_size=4", "logging_steps=1"];
        TinyModelFixture.Train([sftConfig,
            $"model_name_or_path={tiny.ModelDir}", $"dataset_dir={TinyModelFixture.BundledData}", $"output_dir={sft}", "max_steps=8", .. sizes]);

        string dpo = tiny.PathFor("demo-dpo");
        var r = TinyModelFixture.Train([dpoConfig,
            $"model_name_or_path={tiny.ModelDir}", $"adapter_name_or_path={sft}", $"ref_model={tiny.ModelDir}", $"ref_model_adapters={sft}",
            $"dataset_dir={TinyModelFixture.BundledData}", $"output_dir={dpo}", "max_steps=6", .. sizes]);
        Assert.Contains($"reference model: {tiny.ModelDir} with {sft}, for evaluation only", r.Stderr);

        var steps = LogHistory(dpo).Where(e => e["loss"] is not null).ToList();
        Assert.Equal(6, steps.Count);
        Assert.Equal(0, (double)steps[0]["rewards/accuracies"]!);
        Assert.Equal(0, (double)steps[0]["rewards/margins"]!, 6);
        Assert.True((double)steps[^1]["rewards/accuracies"]! > 0.5, $"rewards/accuracies: {string.Join(", ", steps.Select(s => s["rewards/accuracies"]))}");
        Assert.True((double)steps[^1]["rewards/margins"]! > 0);

        // The same adapter trained further: its tensors by name, changed.
        var before = TinyModelFixture.TensorBytes(Path.Combine(sft, "adapter_model.safetensors"));
        var after = TinyModelFixture.TensorBytes(Path.Combine(dpo, "adapter_model.safetensors"));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        Assert.Contains(before.Keys, name => !before[name].AsSpan().SequenceEqual(after[name]));
    }

    /// <summary>Resumed from checkpoint-3 (with LoRA dropout, so the dropout stream's position counts), a run logs and saves what the whole run does.</summary>
    [Fact]
    public void Dpo_resumed_from_a_checkpoint_equals_the_uninterrupted_run()
    {
        string whole = tiny.PathFor("dpo-whole");
        TinyModelFixture.RunTraining(DpoConfig("dpo-whole", whole, ("lora_dropout", 0.1), ("logging_steps", 2)));
        string continued = tiny.PathFor("dpo-continued");
        var r = TinyModelFixture.RunTraining(DpoConfig("dpo-continued", continued, ("lora_dropout", 0.1), ("logging_steps", 2)),
            $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", r.Notes);

        static List<string> Logged(string dir) => LogHistory(dir).Where(e => e["grad_norm"] is not null).Select(e => e.ToJsonString()).ToList();
        Assert.Equal(3, Logged(whole).Count);
        Assert.Equal(Logged(whole), Logged(continued));
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));
    }

    [Fact]
    public void Kto_run_trains_and_logs_trls_metrics()
    {
        string output = tiny.PathFor("kto");
        var r = TinyModelFixture.Train(tiny.WriteConfig("kto", output, ("stage", "kto"), ("dataset", "feedback"), ("dataset_dir", DataDir()),
            ("max_samples", 16), ("plot_loss", true), ("max_steps", 4), ("save_steps", 2)));
        Assert.Contains("reference model: the policy with its adapter disabled", r.Stderr);
        var steps = LogHistory(output).Where(e => e["loss"] is not null).ToList();
        Assert.Equal(4, steps.Count);
        foreach (var entry in steps)
        {
            Assert.True(double.IsFinite((double)entry["loss"]!));
            Assert.NotNull(entry["kl"]);
            Assert.True((double)entry["kl"]! >= 0);
            // A split is logged when the window had answers of its kind; the margin when it had both.
            foreach (string split in new[] { "chosen", "rejected" })
                Assert.Equal(entry[$"rewards/{split}"] is null, entry[$"logps/{split}"] is null);
            if (entry["rewards/chosen"] is not null && entry["rewards/rejected"] is not null)
                Assert.Equal((double)entry["rewards/chosen"]! - (double)entry["rewards/rejected"]!, (double)entry["rewards/margins"]!, 12);
            else
                Assert.Null(entry["rewards/margins"]);
        }
        Assert.Contains(steps, e => e["rewards/chosen"] is not null);
        Assert.Contains(steps, e => e["rewards/rejected"] is not null);
        Assert.True(File.Exists(Path.Combine(output, "training_rewards_chosen.png")));
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.Equal(["checkpoint-2", "checkpoint-4"], Directory.GetDirectories(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    /// <summary>Cancelled in step 2 as Ctrl+C would: the step finishes, checkpoint-2 is saved and the run ends interrupted.</summary>
    [Fact]
    public void Dpo_cancelled_mid_run_saves_a_checkpoint_and_stops()
    {
        string output = tiny.PathFor("dpo-cancelled");
        using var cancellation = new CancellationTokenSource();
        var recorder = new RecordingObserver { Then = e => { if (e is StepCompleted { Progress.Step: 1 }) cancellation.Cancel(); } };
        var result = TrainingWorkflow.Run(new TrainingRequest(SftConfig.Load(DpoConfig("dpo-cancelled", output), [], ConfigUse.Train)), cancellation.Token, recorder);
        Assert.True(result.Interrupted);
        Assert.Equal(["checkpoint-1"], Directory.GetDirectories(output).Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
    }

    /// <summary>On a 4-bit base (QLoRA) with gradient checkpointing, the trained adapter is an ordinary one that generation loads.</summary>
    [Fact]
    public void Dpo_on_a_quantized_base_leaves_an_adapter_generation_loads()
    {
        string output = tiny.PathFor("dpo-qlora");
        TinyModelFixture.Train(DpoConfig("dpo-qlora", output, ("quantization_bit", 4), ("gradient_checkpointing", true), ("max_steps", 2)));
        string reply = TinyModelFixture.Generate(tiny.ModelDir, "Hello", output);
        Assert.False(string.IsNullOrEmpty(reply));
    }

    [Fact]
    public void Orpo_needs_no_reference_and_logs_its_two_terms()
    {
        string output = tiny.PathFor("orpo");
        var r = TinyModelFixture.Train(DpoConfig("orpo", output, ("pref_loss", "orpo"), ("max_steps", 2)));
        Assert.DoesNotContain("reference model:", r.Stderr);
        var step = LogHistory(output).First(e => e["loss"] is not null);
        // orpo's loss is sft_loss + β·odds_ratio_loss, logged before rounding.
        Assert.Equal((double)step["loss"]!, (double)step["sft_loss"]! + 0.1 * (double)step["odds_ratio_loss"]!, 3);
    }

    [Fact]
    public void Full_tuning_reports_the_frozen_reference_copy()
    {
        string output = tiny.PathFor("dpo-full");
        var r = TinyModelFixture.Train(DpoConfig("dpo-full", output, ("finetuning_type", "full"), ("max_steps", 1), ("learning_rate", 1e-5)));
        Assert.Contains("reference model: a frozen copy of the starting weights, ", r.Stderr);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }

    [Theory]
    [InlineData(new[] { "dataset=identity", "dataset_dir=BUNDLED" }, "stage dpo trains on preference pairs and needs a dataset registered with ranking: true")]
    [InlineData(new[] { "pref_bco_weight=0.5" }, "LLaMA-Factory's BCO term (its reward baseline a running mean over the steps, TRL's RunningMoments) is not available")]
    [InlineData(new[] { "do_predict=true", "predict_with_generate=true", "eval_dataset=pairs" }, "predict_with_generate: applies to")]
    public void Refusals_name_what_is_wrong(string[] overrides, string message)
    {
        string output = tiny.PathFor("dpo-refused-" + Guid.NewGuid().ToString("N"));
        var r = CliRunner.Run(["train", DpoConfig("dpo-refused", output), .. overrides.Select(o => o.Replace("BUNDLED", TinyModelFixture.BundledData))]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
    }
}
