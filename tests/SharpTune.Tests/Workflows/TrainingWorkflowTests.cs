using SharpTune.Hparams;
using SharpTune.Tests.EndToEnd;
using SharpTune.Training;
using SharpTune.Training.Trainer;
using SharpTune.Workflows;

namespace SharpTune.Tests.Workflows;

/// <summary>Every event a run reports, in order (events arrive on the thread that runs the work).</summary>
public sealed class RecordingObserver : IRunObserver
{
    public List<RunEvent> Events { get; } = [];

    /// <summary>Called with each event after it is recorded (a test cancels from here).</summary>
    public Action<RunEvent>? Then { get; init; }

    public void On(RunEvent e)
    {
        Events.Add(e);
        Then?.Invoke(e);
    }

    public int IndexOf<T>() where T : RunEvent => Events.FindIndex(e => e is T);
}

/// <summary>
/// <see cref="TrainingWorkflow"/> as a library call on the tiny model: the typed events of a whole run, of a run that
/// fails, and of a run stopped through its cancellation token (what Ctrl+C does in `sharptune train`).
/// </summary>
public sealed class TrainingWorkflowTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const int MaxSteps = 4;

    private SftConfig Config(string name, params (string Key, object? Value)[] keys)
    {
        string output = tiny.PathFor(name);
        (string, object?)[] all = [("max_steps", MaxSteps), ("save_steps", 2), .. keys];
        return SftConfig.Load(tiny.WriteConfig(name, output, all), [], ConfigUse.Train);
    }

    [Fact]
    public void ATrainingRunReportsItsPlanStepsEvaluationsCheckpointsAndResultsInOrder()
    {
        var cfg = Config("events", ("val_size", 4), ("eval_strategy", "steps"), ("eval_steps", 2), ("per_device_eval_batch_size", 2), ("do_eval", true));
        var recorder = new RecordingObserver();
        var result = TrainingWorkflow.Run(new TrainingRequest(cfg, SkipMemoryCheck: true), CancellationToken.None, recorder);

        var events = recorder.Events;
        var started = Assert.IsType<RunStarted>(events[recorder.IndexOf<RunStarted>()]);
        Assert.Equal("train", started.Plan.Task);
        Assert.Equal("sft", started.Plan.Stage);
        Assert.Equal(12, started.Plan.Examples);
        Assert.Equal(MaxSteps, started.Plan.Training!.MaxSteps);

        var logged = events.OfType<StepLogged>().ToList();
        Assert.Equal(Enumerable.Range(1, MaxSteps), logged.Select(l => l.Progress.Step));
        Assert.All(logged, l =>
        {
            Assert.Equal(l.Entry.TryGetDouble("loss"), l.Progress.Loss);
            Assert.Equal(l.Entry.TryGetDouble("learning_rate"), l.Progress.LearningRate);
            Assert.Equal(l.Entry.TryGetDouble("grad_norm"), l.Progress.GradNorm);
            Assert.True(l.Progress.TokensPerSecond > 0);
            Assert.Equal(MaxSteps, l.Progress.MaxSteps);
        });
        Assert.Equal(0, logged[^1].Progress.Remaining.Ticks);
        // eval_steps 2, then do_eval's final evaluation after training.
        var evaluated = events.OfType<Evaluated>().ToList();
        Assert.Equal([(2, false), (4, false), (4, true)], evaluated.Select(e => (e.Step!.Value, e.AfterTraining)));
        Assert.All(evaluated, e => Assert.True(double.IsFinite(e.Result.Loss)));
        var saved = events.OfType<CheckpointSaved>().ToList();
        Assert.Equal([2, 4], saved.Select(c => c.Step));
        Assert.All(saved, c => Assert.True(Directory.Exists(c.Path)));

        // The order a front end relies on: started, then each step's log, its evaluation and its checkpoint, then the end.
        int Index(RunEvent e) => events.IndexOf(e);
        Assert.True(recorder.IndexOf<RunStarted>() < Index(logged[0]));
        Assert.True(Index(logged[1]) < Index(evaluated[0]));
        Assert.True(Index(evaluated[0]) < Index(saved[0]));
        Assert.True(Index(saved[0]) < Index(logged[2]));
        Assert.True(Index(saved[^1]) < Index(evaluated[2]));
        Assert.True(Index(evaluated[2]) < recorder.IndexOf<TrainingEnded>());
        var finished = Assert.IsType<RunFinished>(events[^1]);
        Assert.Equal("train", finished.Task);
        Assert.False(finished.Interrupted);
        Assert.Equal(["epoch", "eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "perplexity",
            "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second"], finished.Results.Select(m => m.Key));
        Assert.Equal(evaluated[2].Result.Loss, finished.Results.Single(m => m.Key == "eval_loss").Value);
        Assert.Equal(result.Training!.TrainLoss, finished.Results.Single(m => m.Key == "train_loss").Value);
        Assert.DoesNotContain(events, e => e is RunFailed);
        Assert.True(File.Exists(Path.Combine(cfg.Training.OutputDir, "adapter_model.safetensors")));
    }

    [Fact]
    public void AFailingRunReportsFailedWithTheMessageAndThrows()
    {
        // A finished run's output_dir (weights, no checkpoint) is refused once the data and model are loaded.
        var cfg = Config("fails");
        Directory.CreateDirectory(cfg.Training.OutputDir);
        File.WriteAllText(Path.Combine(cfg.Training.OutputDir, "adapter_model.safetensors"), "");
        var recorder = new RecordingObserver();
        var error = Assert.ThrowsAny<Exception>(() =>
            TrainingWorkflow.Run(new TrainingRequest(cfg, SkipMemoryCheck: true), CancellationToken.None, recorder));

        var failed = Assert.IsType<RunFailed>(recorder.Events[^1]);
        Assert.Equal("train", failed.Task);
        Assert.Equal(Workflow.MessageOf(error), failed.Message);
        Assert.StartsWith($"output_dir {cfg.Training.OutputDir} already holds model weights (adapter_model.safetensors) and no checkpoint", failed.Message);
        Assert.DoesNotContain(recorder.Events, e => e is RunStarted or RunFinished);
    }

    [Fact]
    public void CancellingTheTokenFinishesTheStepSavesACheckpointAndEndsInterrupted()
    {
        var cfg = Config("cancelled", ("save_steps", 100));
        using var cancellation = new CancellationTokenSource();
        var recorder = new RecordingObserver { Then = e => { if (e is StepCompleted { Progress.Step: 2 }) cancellation.Cancel(); } };
        var result = TrainingWorkflow.Run(new TrainingRequest(cfg, SkipMemoryCheck: true), cancellation.Token, recorder);

        string output = cfg.Training.OutputDir;
        string checkpoint = CheckpointFolders.PathFor(output, 2);
        Assert.True(result.Interrupted);
        Assert.Empty(result.Metrics);
        Assert.Equal(2, result.Training!.GlobalStep);
        Assert.Equal(checkpoint, result.Training.CheckpointPath);
        Assert.Equal([checkpoint], Directory.GetDirectories(output));
        // As after Ctrl+C: the checkpoint is the run's only result; the final model and results are not written.
        Assert.False(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.False(File.Exists(Path.Combine(output, "all_results.json")));

        var events = recorder.Events;
        Assert.Equal(2, events.OfType<CheckpointSaved>().Single().Step);
        Assert.Contains(new TrainerNote($"interrupted at step 2/{MaxSteps}; resume with resume_from_checkpoint: {checkpoint}"), events);
        Assert.True(Assert.IsType<TrainingEnded>(events[^2]).Result.Interrupted);
        var finished = Assert.IsType<RunFinished>(events[^1]);
        Assert.True(finished.Interrupted);
        Assert.Empty(finished.Results);
    }

    /// <summary>A config that evaluates or predicts with the base model on five identity records, two at a time.</summary>
    private SftConfig EvalConfig(string name, params (string Key, object? Value)[] keys) =>
        SftConfig.Load(tiny.WriteConfig(name, tiny.PathFor(name), [
            ("do_train", false), ("dataset", null), ("eval_dataset", "identity"), ("max_samples", 5), ("per_device_eval_batch_size", 2), .. keys]),
            [], ConfigUse.Train);

    [Fact]
    public void AnEvaluationRunReportsItsProgressAndFinishesWithTheSavedMetrics()
    {
        var cfg = EvalConfig("eval-events", ("do_eval", true));
        var recorder = new RecordingObserver();
        var result = TrainingWorkflow.Run(new TrainingRequest(cfg), CancellationToken.None, recorder);

        var events = recorder.Events;
        var plan = Assert.IsType<RunStarted>(events[recorder.IndexOf<RunStarted>()]).Plan;
        Assert.Equal(("eval", 5, (int?)2), (plan.Task, plan.Examples, plan.BatchSize));
        Assert.Equal([2, 4, 5], events.OfType<EvaluationProgressed>().Select(p => p.Done));
        var evaluated = events.OfType<Evaluated>().Single();
        Assert.Null(evaluated.Step);
        Assert.True(recorder.IndexOf<EvaluationProgressed>() < events.IndexOf(evaluated));
        var finished = Assert.IsType<RunFinished>(events[^1]);
        Assert.Equal("eval", finished.Task);
        Assert.Equal(evaluated.Result.Loss, finished.Results.Single(m => m.Key == "eval_loss").Value);
        using var saved = TinyModelFixture.ReadJson(Path.Combine(cfg.Training.OutputDir, "eval_results.json"));
        Assert.Equal(evaluated.Result.Loss, saved.RootElement.GetProperty("eval_loss").GetDouble());
        Assert.Equal(finished.Results, result.Metrics);
    }

    [Fact]
    public void APredictionRunReportsEachBatchAndFinishesWithItsMetrics()
    {
        var cfg = EvalConfig("predict-events", ("do_predict", true), ("predict_with_generate", true), ("max_new_tokens", 3));
        var recorder = new RecordingObserver();
        TrainingWorkflow.Run(new TrainingRequest(cfg), CancellationToken.None, recorder);

        var events = recorder.Events;
        var plan = Assert.IsType<RunStarted>(events[recorder.IndexOf<RunStarted>()]).Plan;
        Assert.Equal(("predict", 5, (int?)2), (plan.Task, plan.Examples, plan.BatchSize));
        Assert.Equal(new PredictionStarted("predict", 5), events[recorder.IndexOf<PredictionStarted>()]);
        var batches = events.OfType<PredictionProgressed>().ToList();
        Assert.Equal([2, 4, 5], batches.Select(b => b.Done));
        Assert.All(batches, b => Assert.Equal(("predict", 5), (b.Label, b.Total)));
        Assert.True(recorder.IndexOf<PredictionStarted>() < events.IndexOf(batches[0]));
        Assert.True(events.IndexOf(batches[^1]) < recorder.IndexOf<PredictionEnded>());
        var finished = Assert.IsType<RunFinished>(events[^1]);
        Assert.Equal("predict", finished.Task);
        Assert.Equal(batches[^1].GeneratedTokens, finished.Results.Single(m => m.Key == "predict_generated_tokens").Value);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(cfg.Training.OutputDir, "generated_predictions.jsonl")).Length);
    }
}
