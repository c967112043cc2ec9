using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Trainer;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// Train, stop part-way, resume: the losses, gradient norms and final adapter of the resumed run equal an
/// uninterrupted run's bit for bit, on the real model with LoRA dropout (so the dropout stream's position matters too).
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ResumeTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private string Config(string name, string outputDir) => tiny.WriteConfig(name, outputDir, ("lora_dropout", 0.1));

    [Fact]
    public void InterruptedAfterStepTwo_ResumedByTheOutputDirRule_MatchesTheUninterruptedRun()
    {
        string whole = tiny.PathFor("whole");
        TinyModelFixture.RunTraining(Config("whole", whole));

        string interrupted = tiny.PathFor("interrupted");
        string config = Config("interrupted", interrupted);
        var stopped = TrainUntilCancelled(config, cancelDuringForward: 2);
        Assert.True(stopped.Interrupted);
        Assert.Equal((2, 6), (stopped.GlobalStep, stopped.MaxSteps));
        Assert.Equal(Path.Combine(interrupted, "checkpoint-2"), stopped.CheckpointPath);
        Assert.Equal(["checkpoint-2"], Directory.GetDirectories(interrupted).Select(Path.GetFileName));

        // The same command again: output_dir holds checkpoint-2, so LLaMA-Factory's rule resumes from it.
        var resumed = TinyModelFixture.RunTraining(config);
        Assert.Contains(resumed.Notes, n => n.Contains($"resuming from {Path.Combine(interrupted, "checkpoint-2")}", StringComparison.Ordinal));
        Assert.Contains(resumed.Notes, n => n.StartsWith("resumed from", StringComparison.Ordinal));
        Assert.DoesNotContain(resumed.Notes, n => n.StartsWith("note: the checkpoint was trained with", StringComparison.Ordinal));
        Assert.Equal([3, 4, 5, 6], resumed.Steps);

        Assert.Equal(TrainerLogLosses(whole), TrainerLogLosses(interrupted));
        Assert.Equal(StepLogs(whole), StepLogs(interrupted));
        Assert.Equal(6, StepLogs(interrupted).Count);
        foreach (string file in new[] { "adapter_model.safetensors", "checkpoint-6/adapter_model.safetensors" })
            Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, file)), TinyModelFixture.TensorBytes(Path.Combine(interrupted, file)));
        Assert.Equal(Directory.GetFiles(Path.Combine(whole, "checkpoint-3")).Select(Path.GetFileName).Order(StringComparer.Ordinal),
            Directory.GetFiles(Path.Combine(interrupted, "checkpoint-3")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string file in Directory.GetFiles(Path.Combine(whole, "checkpoint-3"), "*.safetensors"))
            Assert.Equal(TinyModelFixture.TensorBytes(file), TinyModelFixture.TensorBytes(Path.Combine(interrupted, "checkpoint-3", Path.GetFileName(file))));
    }

    [Fact]
    public void ResumeFromAnExplicitCheckpointIntoANewOutputDir_ContinuesTheSameRun()
    {
        string whole = tiny.PathFor("whole-explicit");
        TinyModelFixture.RunTraining(Config("whole-explicit", whole));

        string continued = tiny.PathFor("continued");
        var r = TinyModelFixture.RunTraining(Config("continued", continued), $"resume_from_checkpoint={Path.Combine(whole, "checkpoint-3")}");
        Assert.Contains($"resumed from {Path.Combine(whole, "checkpoint-3")} at step 3/6", r.Notes);

        // trainer_log.jsonl starts afresh in the new folder; trainer_state.json carries the checkpoint's history.
        Assert.Equal(TrainerLogLosses(whole).Where(l => l.Step > 3), TrainerLogLosses(continued));
        Assert.Equal(StepLogs(whole), StepLogs(continued));
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(whole, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(continued, "adapter_model.safetensors")));
    }

    /// <summary>
    /// What `sharptune train` does, at the library level, with the trainer's cancellation token fired inside the
    /// given forward pass — as Ctrl+C would: the step in progress finishes, a checkpoint is saved and the run stops.
    /// </summary>
    private static TrainResult TrainUntilCancelled(string configPath, int cancelDuringForward)
    {
        var cfg = SftConfig.Load(configPath, [], ConfigUse.Train);
        string modelDir = cfg.Model.ModelNameOrPath;
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var data = SupervisedDatasets.Load(cfg.Data, tokenizer, ChatTemplates.ForModel(cfg.Data.Template, modelDir), cfg.Training.Seed);
        int padId = tokenizer.TokenToId(TokenizerConfig.PadToken(modelDir)!)!.Value;
        using var cancellation = new CancellationTokenSource();
        using var model = new CancellingModel(
            TrainableModels.Create(modelDir, cfg.Finetuning, cfg.Training.GradientCheckpointing, new SeededRandom((ulong)cfg.Training.Seed), cfg.Model.AdapterNameOrPath),
            cancelDuringForward, cancellation);
        return new SftTrainer(model, cfg.Training, data.Train, null, padId).Train(cancellation.Token);
    }

    /// <summary>trainer_log.jsonl's logged steps as (step, loss, lr, epoch): every field that does not measure time.</summary>
    private static List<(int Step, double Loss, double Lr, double Epoch)> TrainerLogLosses(string outputDir) =>
        File.ReadAllLines(Path.Combine(outputDir, "trainer_log.jsonl"))
            .Select(line => JsonNode.Parse(line)!)
            .Where(e => e["loss"] is not null)
            .Select(e => ((int)e["current_steps"]!, (double)e["loss"]!, (double)e["lr"]!, (double)e["epoch"]!))
            .ToList();

    /// <summary>trainer_state.json's per-step log entries as written (loss, full-precision grad_norm, learning_rate, epoch, step).</summary>
    private static List<string> StepLogs(string outputDir)
    {
        using var state = TinyModelFixture.ReadJson(Path.Combine(outputDir, "trainer_state.json"));
        return state.RootElement.GetProperty("log_history").EnumerateArray()
            .Where(e => e.TryGetProperty("grad_norm", out _))
            .Select(e => e.GetRawText())
            .ToList();
    }

    /// <summary>A trainable model that cancels a token during its Nth forward-backward pass, as a Ctrl+C mid-step would.</summary>
    private sealed class CancellingModel(ITrainableModel inner, int cancelDuringForward, CancellationTokenSource cancellation) : ITrainableModel
    {
        private int _forwards;

        public IReadOnlyList<Parameter> TrainableParameters => inner.TrainableParameters;
        public long TotalParameterCount => inner.TotalParameterCount;

        public LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random)
        {
            if (++_forwards == cancelDuringForward) cancellation.Cancel();
            return inner.ForwardBackward(batch, gradScale, random);
        }

        public LossResult Evaluate(TrainingBatch batch) => inner.Evaluate(batch);
        public void Save(string directory) => inner.Save(directory);
        public void Dispose() => inner.Dispose();
    }
}
