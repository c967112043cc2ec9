using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharpTune.Data;
using SharpTune.FineTuning.Memory;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Ppo;
using SharpTune.Workflows;

namespace SharpTune.Tests.Workflows;

/// <summary>
/// Stage ppo end to end on the tiny model and the bundled identity prompts: the policy answers, a reward source scores
/// the answers, and TRL's step trains the policy's adapter and value head. The api reward is a loopback Kestrel server
/// that gives 1 to a reply starting with an ASCII letter and 0 otherwise: the tiny model's likely first tokens include
/// both kinds, so the policy can reach the reward by preferring some of them.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class PpoStageTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IAsyncLifetime
{
    private const string AssistantTurn = "<|im_start|>assistant\n";

    private WebApplication _server = null!;
    private Uri _url = null!;
    private readonly ConcurrentQueue<string> _messages = new();

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _server = builder.Build();
        _server.MapPost("/reward", async context =>
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body);
            var texts = document.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetString()!).ToList();
            foreach (string text in texts) _messages.Enqueue(text);
            await context.Response.WriteAsJsonAsync(new { scores = texts.Select(StartsWithLetter) });
        });
        await _server.StartAsync();
        _url = new Uri(_server.Urls.Single() + "/reward");
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// <summary>The reward: 1 when the reply (after the query's assistant turn) starts with an ASCII letter, else 0.</summary>
    private static double StartsWithLetter(string message)
    {
        string reply = message[(message.LastIndexOf(AssistantTurn, StringComparison.Ordinal) + AssistantTurn.Length)..];
        return reply.Length > 0 && char.IsAsciiLetter(reply.TrimStart()[0]) ? 1 : 0;
    }

    private string PpoConfig(string name, string output, params (string Key, object? Value)[] keys) =>
        tiny.WriteConfig(name, output, [("stage", "ppo"), ("reward_model_type", "api"), ("reward_model", _url.ToString()), ("max_new_tokens", 3), ("top_k", 5),
            ("temperature", 1.0), ("learning_rate", 1.0e-3), ("per_device_train_batch_size", 4), ("gradient_accumulation_steps", 2), ("max_steps", 12), ("save_steps", 6), .. keys]);

    /// <summary>A small run's config: batches of 2 prompts (2 × GA 2 per step), 4 steps, checkpoints every 2.</summary>
    private string ShortConfig(string name, string output, params (string Key, object? Value)[] keys) =>
        PpoConfig(name, output, [("per_device_train_batch_size", 2), ("max_steps", 4), ("save_steps", 2), .. keys]);

    private static List<JsonNode> LogHistory(string output)
    {
        using var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json"));
        return state.RootElement.GetProperty("log_history").EnumerateArray().Select(e => JsonNode.Parse(e.GetRawText())!).ToList();
    }

    /// <summary>A LoRA reward model (stage rm on LLaMA-Factory's dpo_en_demo pairs) on the tiny model: its adapter and value head.</summary>
    private string RewardAdapter()
    {
        string output = tiny.PathFor("ppo-rm");
        if (File.Exists(Path.Combine(output, ValueHead.FileName))) return output;
        TinyModelFixture.RunTraining(tiny.WriteConfig("ppo-rm", output, ("stage", "rm"), ("dataset", "dpo_en_demo"), ("dataset_dir", TestPaths.Fixtures("llamafactory")),
            ("max_samples", 8), ("cutoff_len", 48), ("max_steps", 2), ("save_steps", 2)));
        return output;
    }

    [Fact]
    public void Api_rewarded_run_raises_the_reward_and_saves_the_adapter_and_value_head()
    {
        string output = tiny.PathFor("ppo-api");
        var run = TinyModelFixture.RunTraining(PpoConfig("ppo-api", output, ("plot_loss", true)));
        Assert.Contains("PPO: 8 prompts per step (per_device_train_batch_size 4 × gradient_accumulation_steps 2 × ppo_buffer_size 1), ppo_epochs 4, 12 steps", run.Notes);
        Assert.Contains("reference model: the policy with its adapter disabled (no second copy of the weights)", run.Notes);
        // One request per mini-batch of answers, every answer scored once.
        Assert.Equal(12 * 8, _messages.Count);
        Assert.All(_messages, m => Assert.Contains(AssistantTurn, m));

        var steps = LogHistory(output);
        Assert.Equal(Enumerable.Range(1, 12), steps.Select(e => (int)e["step"]!));
        double First(int n) => steps.Take(n).Average(e => (double)e["reward"]!);
        double Last(int n) => steps.TakeLast(n).Average(e => (double)e["reward"]!);
        Assert.True(Last(4) > First(4) + 0.1, $"reward {string.Join(", ", steps.Select(e => e["reward"]))}");
        foreach (var entry in steps)
        {
            Assert.Equal(["epoch", "learning_rate", "loss", "objective/entropy", "objective/kl", "objective/kl_coef", "ppo/loss/policy", "ppo/loss/total",
                "ppo/loss/value", "ppo/mean_non_score_reward", "ppo/mean_scores", "ppo/policy/approxkl", "ppo/policy/clipfrac", "ppo/policy/policykl",
                "ppo/std_scores", "ppo/val/clipfrac", "ppo/val/vpred", "reward", "step"], entry.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
            // LLaMA-Factory's loss meter holds ppo/loss/total; the reward is the raw scores' mean (no ppo_score_norm here, so ppo/mean_scores too).
            Assert.Equal(Math.Round((double)entry["ppo/loss/total"]!, 4), (double)entry["loss"]!);
            Assert.Equal(Math.Round((double)entry["ppo/mean_scores"]!, 4), (double)entry["reward"]!, 12);
        }
        // The learning rate logged is the one the step used: the scheduler steps once per PPO step, after it.
        Assert.Equal(1.0e-3, (double)steps[0]["learning_rate"]!);
        Assert.True((double)steps[^1]["learning_rate"]! < (double)steps[1]["learning_rate"]!);
        // The adaptive KL controller starts at 0.2 and moves towards ppo_target after each step.
        Assert.Equal(0.2, (double)steps[0]["objective/kl_coef"]!);
        Assert.NotEqual(0.2, (double)steps[1]["objective/kl_coef"]!);
        Assert.Equal(1.0, (double)steps[^1]["epoch"]!);

        foreach (string dir in new[] { output, Path.Combine(output, "checkpoint-6"), Path.Combine(output, "checkpoint-12") })
        {
            Assert.True(File.Exists(Path.Combine(dir, "adapter_model.safetensors")), dir);
            Assert.True(File.Exists(Path.Combine(dir, ValueHead.FileName)), dir);
        }
        Assert.True(File.Exists(Path.Combine(output, "checkpoint-6", PpoTrainer.StateFileName)));
        Assert.True(File.Exists(Path.Combine(output, "training_reward.png")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        var logLines = File.ReadAllLines(Path.Combine(output, "trainer_log.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(12, logLines.Count);
        Assert.Equal((double)steps[^1]["reward"]!, (double)logLines[^1]["reward"]!);
        // The trained adapter generates as an ordinary LoRA adapter.
        Assert.NotEmpty(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", output));
    }

    /// <summary>
    /// Resumed from checkpoint-2 (LoRA dropout on, score normalisation and reward whitening on, so the generators, the
    /// KL coefficient and the running score moments all count), a run logs and saves what the whole run does.
    /// </summary>
    [Fact]
    public void Resumed_run_equals_the_uninterrupted_one()
    {
        (string Key, object? Value)[] keys = [("lora_dropout", 0.1), ("ppo_score_norm", true), ("ppo_whiten_rewards", true)];
        string whole = tiny.PathFor("ppo-whole");
        TinyModelFixture.RunTraining(ShortConfig("ppo-whole", whole, keys));
        string continued = tiny.PathFor("ppo-continued");
        var r = TinyModelFixture.RunTraining(ShortConfig("ppo-continued", continued, keys), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-2")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-2")} at step 2/4", r.Notes);

        Assert.Equal(4, LogHistory(whole).Count);
        Assert.Equal(LogHistory(whole).Select(e => e.ToJsonString()), LogHistory(continued).Select(e => e.ToJsonString()));
        foreach (string file in new[] { "adapter_model.safetensors", ValueHead.FileName })
            Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, file)), TinyModelFixture.TensorBytes(Path.Combine(continued, file)));
    }

    /// <summary>Cancelled in step 1 as Ctrl+C would: the step finishes, checkpoint-1 is saved with the PPO state, and the run ends interrupted.</summary>
    [Fact]
    public void Cancelled_run_saves_a_checkpoint_and_stops()
    {
        string output = tiny.PathFor("ppo-cancelled");
        using var cancellation = new CancellationTokenSource();
        var recorder = new RecordingObserver { Then = e => { if (e is StepCompleted { Progress.Step: 1 }) cancellation.Cancel(); } };
        var result = TrainingWorkflow.Run(new TrainingRequest(SftConfig.Load(ShortConfig("ppo-cancelled", output), [], ConfigUse.Train)), cancellation.Token, recorder);
        Assert.True(result.Interrupted);
        Assert.Equal(["checkpoint-1"], Directory.GetDirectories(output).Select(Path.GetFileName));
        Assert.True(File.Exists(Path.Combine(output, "checkpoint-1", PpoTrainer.StateFileName)));
        Assert.True(File.Exists(Path.Combine(output, "checkpoint-1", ValueHead.FileName)));
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
    }

    [Fact]
    public void Lora_reward_model_scores_with_its_adapter_swapped_in()
    {
        string rm = RewardAdapter();
        string output = tiny.PathFor("ppo-lora");
        var run = TinyModelFixture.RunTraining(ShortConfig("ppo-lora", output, ("reward_model_type", "lora"), ("reward_model", rm), ("max_steps", 2)));
        Assert.Contains($"reward model: the adapter {rm} swapped in for the policy's on the same base weights, with its value head", run.Notes);
        Assert.Empty(_messages);
        var steps = LogHistory(output);
        Assert.Equal(2, steps.Count);
        Assert.All(steps, e => Assert.True(double.IsFinite((double)e["reward"]!)));
        Assert.True(File.Exists(Path.Combine(output, ValueHead.FileName)));
    }

    [Fact]
    public void Swapping_an_adapter_in_computes_with_it_and_puts_the_model_s_own_back()
    {
        string rm = RewardAdapter();
        var batch = new TrainingBatch(1, 4, [9707, 11, 1879, 0], [1, 1, 1, 1], [-100, 11, 1879, 0]);
        float[] withRm;
        using (var rmModel = DecoderModel.LoadForGeneration(tiny.ModelDir, adapterDirectories: [rm])) withRm = rmModel.Logits(batch);
        using var model = DecoderModel.LoadForGeneration(tiny.ModelDir, adapterDirectories: [TrainedLora()]);
        float[] own = model.Logits(batch);
        Assert.NotEqual(own, withRm);
        using (model.UseAdapterInstead(AdapterFolders.Read(rm))) Assert.Equal(withRm, model.Logits(batch));
        Assert.Equal(own, model.Logits(batch));
    }

    /// <summary>A plain LoRA adapter of the tiny model (two SFT steps), which has no value head.</summary>
    private string TrainedLora()
    {
        string output = tiny.PathFor("ppo-sft");
        if (!File.Exists(Path.Combine(output, "adapter_model.safetensors")))
            TinyModelFixture.RunTraining(tiny.WriteConfig("ppo-sft", output, ("max_steps", 2), ("save_steps", 2)));
        return output;
    }

    /// <summary>A full reward model (the tiny model with the rm adapter and its head) scoring a fully tuned policy, whose reference is a frozen copy.</summary>
    [Fact]
    public void Full_reward_model_scores_a_fully_tuned_policy()
    {
        string rm = RewardAdapter();
        string output = tiny.PathFor("ppo-full");
        var run = TinyModelFixture.RunTraining(ShortConfig("ppo-full", output, ("finetuning_type", "full"), ("reward_model_type", "full"), ("reward_model", tiny.ModelDir),
            ("reward_model_adapters", rm), ("max_steps", 2)));
        Assert.Contains($"reward model: {tiny.ModelDir} with {rm}, for evaluation only", run.Notes);
        Assert.Contains(run.Notes, n => n.StartsWith("reference model: a frozen copy of the starting weights", StringComparison.Ordinal));
        Assert.Equal(2, LogHistory(output).Count);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, ValueHead.FileName)));
    }

    /// <summary>The memory pre-flight counts PPO's reference as the stage builds it: a frozen copy for full tuning, none for LoRA.</summary>
    [Fact]
    public void Memory_preflight_counts_the_reference_the_stage_builds()
    {
        TrainingMemorySetup Setup(string name, params (string Key, object? Value)[] keys) =>
            TrainingMemorySetup.From(SftConfig.Load(ShortConfig(name, tiny.PathFor(name), keys), [], ConfigUse.Train));
        Assert.Equal(PreferenceReference.StartingWeightsCopy, Setup("ppo-memory-full", ("finetuning_type", "full")).Reference);
        Assert.Equal(PreferenceReference.TunersDisabled, Setup("ppo-memory-lora").Reference);
    }

    [Fact]
    public void Refusals_name_what_is_wrong()
    {
        string Refused(string name, params (string Key, object? Value)[] keys)
        {
            string config = ShortConfig(name, tiny.PathFor(name), keys);
            return Assert.ThrowsAny<Exception>(() => TinyModelFixture.RunTraining(config)).Message;
        }

        Assert.Contains("has no value_head.safetensors", Refused("ppo-no-head", ("reward_model_type", "lora"), ("reward_model", TrainedLora())));
        Assert.Contains("cannot be lora for finetuning_type full", Refused("ppo-full-lora", ("reward_model_type", "lora"), ("reward_model", TrainedLora()), ("finetuning_type", "full")));
        Assert.Contains("finetuning_type prompt_tuning (prompt learning) is not available for it", Refused("ppo-prompt", ("finetuning_type", "prompt_tuning"), ("num_virtual_tokens", 4)));
        Assert.Contains("the training set has 3 prompts, fewer than one PPO batch of 4", Refused("ppo-few", ("max_samples", 3)));
        Assert.Contains("is not an http(s) URL", Refused("ppo-url", ("reward_model", "ftp://localhost/reward")));
        Assert.Contains($"has no {PpoTrainer.StateFileName}: it was not saved by stage ppo",
            Refused("ppo-resume-rm", ("resume_from_checkpoint", Path.Combine(RewardAdapter(), "checkpoint-2"))));
    }
}
