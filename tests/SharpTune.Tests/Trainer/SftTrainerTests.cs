using System.Text.Json;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.IO.Safetensors;
using SharpTune.Reporting;
using SharpTune.Tests.IO;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Trainer;

public class SftTrainerTests
{
    private const double Lr = 0.05;

    // 14 examples in batches of 2 → 7 batches per epoch; GA 2 → 3 updates per epoch, and the groups of two
    // micro-batches straddle epoch boundaries; 4 epochs → 12 steps.
    private static readonly List<SupervisedExample> TrainSet = TinyLanguageModel.Examples(14, seed: 5);
    private static readonly List<SupervisedExample> EvalSet = TinyLanguageModel.Examples(7, seed: 6);

    private static TrainingArguments Args(string outputDir) => new()
    {
        OutputDir = outputDir,
        PerDeviceTrainBatchSize = 2,
        PerDeviceEvalBatchSize = 3,
        GradientAccumulationSteps = 2,
        LearningRate = Lr,
        NumTrainEpochs = 4,
        LrSchedulerType = "linear",
        WarmupSteps = 2,
        WeightDecay = 0.01,
        MaxGradNorm = 1.0,
        LoggingSteps = 2,
        SaveStrategy = "steps",
        SaveSteps = 4,
        Seed = 7,
    };

    /// <summary>The trainer with the result files observing it, as a workflow runs it (train_results.json, trainer_state.json, ...).</summary>
    private static TrainResult Train(TinyLanguageModel model, TrainingArguments args, bool withEval = false, CancellationToken cancellation = default, TerminalProgress? progress = null) =>
        new SftTrainer(model, args, TrainSet, withEval ? EvalSet : null, padTokenId: 0,
            progress is null ? new ResultFiles(args.OutputDir) : new RunObservers(new ResultFiles(args.OutputDir), progress)).Train(cancellation);

    /// <summary>
    /// Log history without the wall-clock values (runtime and throughput), which differ between runs; keys sorted,
    /// since entries restored from trainer_state.json come back in its sorted order (as in transformers).
    /// </summary>
    private static List<string> Deterministic(IEnumerable<LogEntry> history) =>
        history.Select(e => PythonJson.Dumps(e.Values.Where(kv => !kv.Key.EndsWith("_runtime") && !kv.Key.EndsWith("_per_second")).ToList(), sortKeys: true)).ToList();

    private static float[][] Snapshot(TinyLanguageModel model) => model.TrainableParameters.Select(p => (float[])p.Data.Clone()).ToArray();

    private static void AssertBitIdentical(float[][] expected, TinyLanguageModel model)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].AsSpan().SequenceEqual(model.TrainableParameters[i].Data), $"parameter {model.TrainableParameters[i].Name} differs");
    }

    private static string[] Folders(string dir) => Directory.GetDirectories(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    [Fact]
    public void Training_LowersTheLoss_AndRunsThePlannedSteps()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.NumTrainEpochs = 10;
        var model = new TinyLanguageModel(seed: 1);
        var result = Train(model, args);

        Assert.False(result.Interrupted);
        Assert.Equal(30, result.GlobalStep);
        Assert.Equal(60, model.ForwardCalls);
        var losses = result.LossCurve.Training;
        Assert.Equal(15, losses.Count);
        Assert.True(losses[^1].Loss < losses[0].Loss - 0.5, $"loss went from {losses[0].Loss} to {losses[^1].Loss}");
    }

    [Fact]
    public void AccumulationAcrossEpochs_FollowsTransformersStepCount()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.PerDeviceTrainBatchSize = 1;
        args.GradientAccumulationSteps = 4;
        args.NumTrainEpochs = 3;
        args.SaveStrategy = "no";
        var examples = TrainSet.Take(10).ToList();
        var model = new TinyLanguageModel(seed: 1);
        var result = new SftTrainer(model, args, examples, null, 0).Train();

        // 10 batches // 4 = 2 updates per epoch → 6 steps; the 6th ends at micro-batch 24 = epoch 2, batch 4.
        Assert.Equal(6, result.GlobalStep);
        Assert.Equal(24, model.ForwardCalls);
        Assert.Equal(2.4, result.Epoch, 1e-12);
        Assert.Equal(2.4, result.Metrics["epoch"]);
    }

    [Fact]
    public void Logs_TrainerState_AndResults_FollowTransformersAndLlamaFactory()
    {
        using var dir = new TempDir();
        var model = new TinyLanguageModel(seed: 1);
        var result = Train(model, Args(dir.Path));

        // loss = round(Σ over the window's micro-batches of mean/GA, divided by the window's steps, 4).
        var m = model.TrainingLosses;
        var logs = result.LogHistory.Where(e => e.Contains("loss")).ToList();
        Assert.Equal([2, 4, 6, 8, 10, 12], logs.Select(e => e.Step));
        for (int k = 0; k < logs.Count; k++)
        {
            double window = (m[4 * k] / 2 + m[4 * k + 1] / 2 + m[4 * k + 2] / 2 + m[4 * k + 3] / 2) / 2;
            Assert.Equal(PythonJson.Round(window, 4), logs[k].TryGetDouble("loss"));
            Assert.True(logs[k].TryGetDouble("grad_norm") > 0);
            // The lr logged after step s is the one step s + 1 will use: linear with 2 warmup steps over 12.
            int s = logs[k].Step;
            Assert.Equal(Lr * (12 - s) / 10.0, logs[k].TryGetDouble("learning_rate")!.Value, 1e-15);
        }
        // Step s ends at micro-batch 2s; with 7 batches per epoch that is epoch (2s-1) / 7 + ((2s-1) % 7 + 1) / 7.
        Assert.Equal([0.57, 1.14, 1.71, 2.29, 2.86, 3.43], logs.Select(e => e.TryGetDouble("epoch")!.Value));
        Assert.Equal(["loss", "grad_norm", "learning_rate", "epoch", "step"], logs[0].Values.Select(kv => kv.Key));

        var final = result.LogHistory[^1];
        Assert.Equal(["train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "epoch", "step"], final.Values.Select(kv => kv.Key));
        double expectedTrainLoss = m.Sum(x => x / 2) / 12;
        Assert.Equal(expectedTrainLoss, result.TrainLoss!.Value, 1e-12);

        string stateText = File.ReadAllText(Path.Combine(dir.Path, "trainer_state.json"));
        Assert.StartsWith("{\n  \"best_metric\": null,\n  \"best_model_checkpoint\": null,\n  \"epoch\": 3.4285714285714284,\n  \"eval_steps\": 500,\n  \"global_step\": 12,", stateText);
        using (var state = JsonDocument.Parse(stateText))
        {
            var root = state.RootElement;
            Assert.Equal(12, root.GetProperty("max_steps").GetInt32());
            Assert.Equal(4, root.GetProperty("num_train_epochs").GetInt32());
            Assert.Equal(2, root.GetProperty("logging_steps").GetInt32());
            Assert.Equal(4, root.GetProperty("save_steps").GetInt32());
            Assert.Equal(2, root.GetProperty("train_batch_size").GetInt32());
            Assert.Equal(7, root.GetProperty("log_history").GetArrayLength());
            var first = root.GetProperty("log_history")[0];
            Assert.Equal(logs[0].TryGetDouble("loss"), first.GetProperty("loss").GetDouble());
            Assert.Equal(2, first.GetProperty("step").GetInt32());
        }

        string[] lines = File.ReadAllLines(Path.Combine(dir.Path, "trainer_log.jsonl"));
        Assert.Equal(7, lines.Length);
        Assert.StartsWith($"{{\"current_steps\": 2, \"total_steps\": 12, \"loss\": {PyFloat(logs[0].TryGetDouble("loss")!.Value)}, \"lr\": {PyFloat(Lr)}, \"epoch\": 0.57, \"percentage\": 16.67, \"elapsed_time\": \"0:00:", lines[0]);
        Assert.Contains("\"remaining_time\": \"", lines[0]);
        Assert.Contains("\"total_tokens\": ", lines[0]);
        Assert.StartsWith("{\"current_steps\": 12, \"total_steps\": 12, \"epoch\": 3.43, \"percentage\": 100.0, \"elapsed_time\": ", lines[^1]);

        string trainResults = File.ReadAllText(Path.Combine(dir.Path, "train_results.json"));
        using (var doc = JsonDocument.Parse(trainResults))
        {
            Assert.Equal(["epoch", "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second"],
                doc.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal(3.43, doc.RootElement.GetProperty("epoch").GetDouble());
            Assert.Equal(result.TrainLoss!.Value, doc.RootElement.GetProperty("train_loss").GetDouble());
        }
        Assert.StartsWith("{\n    \"epoch\": 3.43,\n    \"train_loss\": ", trainResults);
        Assert.Equal(trainResults, File.ReadAllText(Path.Combine(dir.Path, "all_results.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "model.safetensors")));
        Assert.Equal(["checkpoint-12", "checkpoint-4", "checkpoint-8"], Folders(dir.Path));
    }

    private static string PyFloat(double value) => PythonJson.Dumps(value);

    /// <summary>
    /// The result files are an observer's: the trainer alone reports its final metrics and state as events and writes
    /// none of them (the model, trainer_log.jsonl and checkpoints stay its own); given the events, the observer writes
    /// what a run that it watched writes.
    /// </summary>
    [Fact]
    public void WithoutTheResultFilesObserver_TheTrainerReportsItsResultsAndWritesNoResultFile()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.EvalStrategy = "steps";
        args.EvalSteps = 6;
        args.DoEval = true;
        var events = new List<RunEvent>();
        var result = new SftTrainer(new TinyLanguageModel(seed: 1), args, TrainSet, EvalSet, padTokenId: 0, new EventList(events)).Train();

        Assert.Equal(["checkpoint-12", "checkpoint-4", "checkpoint-8", "model.safetensors", "trainer_log.jsonl"],
            Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var reported = events.OfType<ResultsReported>().ToList();
        Assert.Equal(["train", "eval"], reported.Select(r => r.Split));
        Assert.Equal(result.TrainLoss, reported[0].Metrics.Single(m => m.Key == "train_loss").Value);
        Assert.Equal(result.Metrics["perplexity"], reported[1].Metrics.Single(m => m.Key == "perplexity").Value);
        var final = Assert.Single(events.OfType<FinalStateReported>());
        Assert.Equal(12, final.State.GlobalStep);
        // The state as training finished: the final evaluation, logged after it, is not in the trainer_state.json it becomes.
        Assert.Equal(result.LogHistory.Count - 1, final.State.LogHistory.Count);

        using var written = new TempDir();
        var files = new ResultFiles(written.Path);
        foreach (var e in events) files.On(e);
        Assert.Equal(["all_results.json", "eval_results.json", "train_results.json", "trainer_state.json"],
            Directory.GetFiles(written.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(PythonJson.Dumps(reported[0].Metrics, indent: 4, sortKeys: true), File.ReadAllText(Path.Combine(written.Path, "train_results.json")));
    }

    private sealed class EventList(List<RunEvent> events) : IRunObserver
    {
        public void On(RunEvent e) => events.Add(e);
    }

    [Fact]
    public void Evaluation_AveragesBatchLossesPerExample_AndReportsPerplexity()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.EvalStrategy = "steps";
        args.EvalSteps = 3;
        args.DoEval = true;
        var model = new TinyLanguageModel(seed: 1);
        var result = Train(model, args, withEval: true);

        var evals = result.LogHistory.Where(e => e.Contains("eval_loss")).ToList();
        Assert.Equal([3, 6, 9, 12, 12], evals.Select(e => e.Step));
        Assert.Equal(["eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch", "step"], evals[0].Values.Select(kv => kv.Key));

        // The final evaluation runs on the trained model: batches of 3, 3 and 1, each batch's mean weighted by its size.
        double Mean(int start, int count) => model.Evaluate(SupervisedCollator.Collate(EvalSet.Skip(start).Take(count).ToList(), 0)).Mean;
        double expected = (3 * Mean(0, 3) + 3 * Mean(3, 3) + 1 * Mean(6, 1)) / 7;
        Assert.Equal(expected, result.Metrics["eval_loss"], 1e-12);
        Assert.Equal(Math.Exp(expected), result.Metrics["perplexity"], 1e-9);
        Assert.Equal(expected, evals[^1].TryGetDouble("eval_loss")!.Value, 1e-12);

        using var all = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "all_results.json")));
        Assert.Equal(["epoch", "eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "perplexity",
                "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second"],
            all.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.True(File.Exists(Path.Combine(dir.Path, "eval_results.json")));

        var logLines = File.ReadAllLines(Path.Combine(dir.Path, "trainer_log.jsonl"));
        Assert.Equal(4, logLines.Count(l => l.Contains("\"eval_loss\": ")));
        Assert.Equal(2, result.LossCurve.Evaluation.Count(p => p.Step == 12));
    }

    /// <summary>With adamw_8bit the model is wide enough (dim 400) for its two matrices to keep 8-bit moments.</summary>
    [Theory]
    [InlineData("adamw_torch", TinyLanguageModel.DefaultDim)]
    [InlineData("adamw_8bit", 400)]
    public void CancelledRun_ResumedFromLatestCheckpoint_MatchesTheUninterruptedRunBitForBit(string optim, int dim)
    {
        using var reference = new TempDir();
        var referenceModel = new TinyLanguageModel(seed: 1, dim: dim);
        var args = Args(reference.Path);
        args.Optim = optim;
        args.EvalStrategy = "steps";
        args.EvalSteps = 3;
        var uninterrupted = Train(referenceModel, args, withEval: true);
        var expectedParameters = Snapshot(referenceModel);

        using var dir = new TempDir();
        args.OutputDir = dir.Path;
        var cts = new CancellationTokenSource();
        var first = new TinyLanguageModel(seed: 1, dim: dim) { AfterForward = calls => { if (calls == 13) cts.Cancel(); } };
        var interrupted = Train(first, args, withEval: true, cts.Token);

        // Cancelled during step 7's first micro-batch: step 7 is finished, saved, and the run stops.
        Assert.True(interrupted.Interrupted);
        Assert.Equal(7, interrupted.GlobalStep);
        Assert.Equal(14, first.ForwardCalls);
        Assert.Equal(CheckpointFolders.PathFor(dir.Path, 7), interrupted.CheckpointPath);
        Assert.Equal(["checkpoint-4", "checkpoint-7"], Folders(dir.Path));
        Assert.False(File.Exists(Path.Combine(dir.Path, "train_results.json")));
        using (var saved = SafetensorsFile.Open(Path.Combine(interrupted.CheckpointPath!, TrainingCheckpoint.OptimizerFile)))
        {
            Assert.Equal(optim, saved.Metadata["optim"]);
            // 8-bit: the codes of both moments of the two 4400-value matrices; the bias keeps fp32 moments.
            Assert.Equal(optim == "adamw_8bit" ? 4 : 0, saved.Tensors.Count(t => t.DType == DType.U8));
        }

        args.ResumeFromLatestCheckpoint = true;
        var resumedModel = new TinyLanguageModel(seed: 99, dim: dim);
        var resumed = Train(resumedModel, args, withEval: true);

        Assert.False(resumed.Interrupted);
        Assert.Equal(10, resumedModel.ForwardCalls);
        Assert.Equal(Deterministic(uninterrupted.LogHistory), Deterministic(resumed.LogHistory));
        Assert.Equal(uninterrupted.TrainLoss, resumed.TrainLoss);
        AssertBitIdentical(expectedParameters, resumedModel);
        Assert.Equal(File.ReadAllLines(Path.Combine(reference.Path, "trainer_log.jsonl")).Length,
            File.ReadAllLines(Path.Combine(dir.Path, "trainer_log.jsonl")).Length);

        // An explicit path resumes from an earlier checkpoint (one saved by save_steps) just as exactly; the log
        // lines after its step are dropped and written again.
        args.ResumeFromLatestCheckpoint = false;
        args.ResumeFromCheckpoint = CheckpointFolders.PathFor(dir.Path, 4);
        var fromFour = new TinyLanguageModel(seed: 42, dim: dim);
        var again = Train(fromFour, args, withEval: true);
        Assert.Equal(Deterministic(uninterrupted.LogHistory), Deterministic(again.LogHistory));
        AssertBitIdentical(expectedParameters, fromFour);
        var steps = File.ReadAllLines(Path.Combine(dir.Path, "trainer_log.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("current_steps").GetInt32()).ToList();
        Assert.Equal(File.ReadAllLines(Path.Combine(reference.Path, "trainer_log.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("current_steps").GetInt32()).ToList(), steps);
    }

    /// <summary>
    /// Item: after a resume, trainer_log.jsonl's throughput divided every token of the run (those before the
    /// checkpoint too) by this process's time, so a run resumed near its end reported millions of tokens/s. A resumed
    /// run measures its own tokens over its own time.
    /// </summary>
    [Fact]
    public void ThroughputAfterAResume_CountsOnlyTheResumedRunsTokens()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.LoggingSteps = 1;
        using var cts = new CancellationTokenSource();
        // Cancelled during step 11's first micro-batch: step 11 is finished and saved.
        Train(new TinyLanguageModel(seed: 1) { AfterForward = calls => { if (calls == 21) cts.Cancel(); } }, args, cancellation: cts.Token);

        // Step 12 takes at least two forwards of 200 ms each: the resumed run's time is at least 0.4 s.
        args.ResumeFromLatestCheckpoint = true;
        Train(new TinyLanguageModel(seed: 1) { AfterForward = _ => Thread.Sleep(200) }, args);

        var lines = File.ReadAllLines(Path.Combine(dir.Path, "trainer_log.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var step11 = lines.Single(l => l.GetProperty("current_steps").GetInt32() == 11);
        var step12 = lines.First(l => l.GetProperty("current_steps").GetInt32() == 12);
        long resumedTokens = step12.GetProperty("total_tokens").GetInt64() - step11.GetProperty("total_tokens").GetInt64();
        Assert.InRange(step12.GetProperty("throughput").GetDouble(), double.Epsilon, resumedTokens / 0.4);
    }

    [Fact]
    public void EpochStrategies_SaveAndEvaluateAtEpochEnds_AndResumeMidAccumulationExactly()
    {
        using var reference = new TempDir();
        var args = Args(reference.Path);
        args.SaveStrategy = "epoch";
        args.EvalStrategy = "epoch";
        var referenceModel = new TinyLanguageModel(seed: 1);
        var uninterrupted = Train(referenceModel, args, withEval: true);

        // Epochs end after micro-batches 7, 14, 21 (steps 3, 7, 10); the last epoch stops at step 12, its end
        // still evaluates and saves.
        Assert.Equal([3, 7, 10, 12], uninterrupted.LogHistory.Where(e => e.Contains("eval_loss")).Select(e => e.Step));
        Assert.Equal(["checkpoint-10", "checkpoint-12", "checkpoint-3", "checkpoint-7"], Folders(reference.Path));
        // Epochs 0 and 2 end inside a GA group: the first micro-batch's gradient of the next step is saved with them.
        Assert.True(File.Exists(Path.Combine(CheckpointFolders.PathFor(reference.Path, 3), "accumulated_gradients.safetensors")));
        Assert.False(File.Exists(Path.Combine(CheckpointFolders.PathFor(reference.Path, 7), "accumulated_gradients.safetensors")));

        foreach (int step in new[] { 3, 10 })
        {
            using var dir = new TempDir();
            foreach (string file in Directory.GetFiles(CheckpointFolders.PathFor(reference.Path, step)))
            {
                Directory.CreateDirectory(CheckpointFolders.PathFor(dir.Path, step));
                File.Copy(file, Path.Combine(CheckpointFolders.PathFor(dir.Path, step), Path.GetFileName(file)));
            }
            args.OutputDir = dir.Path;
            args.ResumeFromLatestCheckpoint = true;
            var resumedModel = new TinyLanguageModel(seed: 5);
            var resumed = Train(resumedModel, args, withEval: true);
            Assert.Equal(Deterministic(uninterrupted.LogHistory), Deterministic(resumed.LogHistory));
            AssertBitIdentical(Snapshot(referenceModel), resumedModel);
        }
    }

    [Fact]
    public void SaveTotalLimit_DeletesTheOldestCheckpoints()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.MaxSteps = 10;
        args.SaveSteps = 2;
        args.SaveTotalLimit = 2;
        var progress = new StringWriter();
        Train(new TinyLanguageModel(seed: 1), args, progress: new TerminalProgress(progress, live: false));

        Assert.Equal(["checkpoint-10", "checkpoint-8"], Folders(dir.Path));
        Assert.Contains("(removed checkpoint-2: save_total_limit 2)", progress.ToString());
    }

    [Fact]
    public void CrashWhileWritingACheckpoint_LeavesThePreviousOneIntact()
    {
        using var reference = new TempDir();
        var referenceModel = new TinyLanguageModel(seed: 1);
        var uninterrupted = Train(referenceModel, Args(reference.Path));

        using var dir = new TempDir();
        var args = Args(dir.Path);
        var crashing = new TinyLanguageModel(seed: 1)
        {
            BeforeSave = target =>
            {
                if (!target.Contains("checkpoint-8")) return;
                File.WriteAllText(Path.Combine(target, "model.safetensors"), "half a file");
                throw new IOException("No space left on device");
            },
        };
        var e = Assert.Throws<IOException>(() => Train(crashing, args));
        Assert.Equal("No space left on device", e.Message);

        Assert.Equal(["checkpoint-4"], Folders(dir.Path));
        string kept = CheckpointFolders.PathFor(dir.Path, 4);
        Assert.Equal(["model.safetensors", "optimizer.safetensors", "resume_state.json", "trainable_parameters.safetensors", "trainer_state.json"],
            Directory.GetFiles(kept).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(CheckpointFolders.PathFor(dir.Path, 4), CheckpointFolders.Latest(dir.Path));

        // A hard crash (power loss) would instead leave the hidden temporary folder: never picked, removed on start.
        Directory.CreateDirectory(Path.Combine(dir.Path, $".checkpoint-8.{Guid.NewGuid():N}.tmp"));
        Assert.Equal(CheckpointFolders.PathFor(dir.Path, 4), CheckpointFolders.Latest(dir.Path));

        args.ResumeFromLatestCheckpoint = true;
        var resumedModel = new TinyLanguageModel(seed: 3);
        var resumed = Train(resumedModel, args);
        Assert.Equal(Deterministic(uninterrupted.LogHistory), Deterministic(resumed.LogHistory));
        AssertBitIdentical(Snapshot(referenceModel), resumedModel);
        Assert.Equal(["checkpoint-12", "checkpoint-4", "checkpoint-8"], Folders(dir.Path));
    }

    [Fact]
    public void Resume_FromAnotherModel_NamesTheMismatchedParameter()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.MaxSteps = 4;
        Train(new TinyLanguageModel(seed: 1), args);

        args.ResumeFromLatestCheckpoint = true;
        var other = new TinyLanguageModel(seed: 1, projectionName: "lm_head.weight");
        var e = Assert.Throws<InvalidDataException>(() => Train(other, args));
        Assert.Contains("has no tensor 'lm_head.weight'", e.Message);
    }

    [Fact]
    public void ResumeTrue_WithoutCheckpoints_IsAnError()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.ResumeFromLatestCheckpoint = true;
        var e = Assert.Throws<ArgumentException>(() => Train(new TinyLanguageModel(seed: 1), args));
        Assert.Contains("no checkpoint-N folder", e.Message);
    }

    [Fact]
    public void EvalStrategy_WithoutAnEvalSet_IsAnError()
    {
        using var dir = new TempDir();
        var args = Args(dir.Path);
        args.EvalStrategy = "steps";
        var e = Assert.Throws<ArgumentException>(() => new SftTrainer(new TinyLanguageModel(seed: 1), args, TrainSet, null, 0));
        Assert.Contains("there is no evaluation set", e.Message);
    }

    [Fact]
    public void Progress_PlainLinesWhenRedirected_LiveLineOnATerminal()
    {
        using var dir = new TempDir();
        var plain = new StringWriter();
        var result = Train(new TinyLanguageModel(seed: 1), Args(dir.Path), progress: new TerminalProgress(plain, live: false));
        string text = plain.ToString();
        string firstLoss = result.LogHistory[0].TryGetDouble("loss")!.Value.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture);
        Assert.StartsWith($"[step 2/12 16.7%] loss {firstLoss} | grad_norm ", text);
        Assert.Contains($"saved {CheckpointFolders.PathFor(dir.Path, 4)}", text);
        Assert.Contains("training finished: 12 steps", text);
        Assert.DoesNotContain("\r", text);

        using var liveDir = new TempDir();
        var live = new StringWriter();
        Train(new TinyLanguageModel(seed: 1), Args(liveDir.Path), progress: new TerminalProgress(live, live: true));
        Assert.Contains("\r[##", live.ToString());
        Assert.Contains(" 12/12 100.0%", live.ToString());
        Assert.Contains("\u001b[K", live.ToString());
    }
}
