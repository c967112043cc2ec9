using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Reporting;
using SharpTune.Tests.IO;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Trainer;

/// <summary>
/// The trainer's seam for a stage's own step: the metrics a step stores per micro-batch are logged as their mean over
/// the log window (eval_ ones after an evaluation), and a run resumed from a checkpoint saved mid-window logs exactly
/// what the uninterrupted run logs.
/// </summary>
public sealed class TrainingStepSeamTests
{
    private static readonly List<SupervisedExample> TrainSet = TinyLanguageModel.Examples(14, seed: 5);
    private static readonly List<SupervisedExample> EvalSet = TinyLanguageModel.Examples(7, seed: 6);

    /// <summary>SFT's step, also storing its loss as "copy/loss" and the batch's example count as "rows".</summary>
    private sealed class MetricStep(ITrainableModel model) : ITrainingStep<SupervisedExample>
    {
        private readonly CrossEntropyStep<SupervisedExample> _inner = new(model, new SupervisedBatches(0));

        public StepResult ForwardBackward(IReadOnlyList<SupervisedExample> examples, float gradScale, SeededRandom random) =>
            WithMetrics(_inner.ForwardBackward(examples, gradScale, random), examples.Count);

        public StepResult Evaluate(IReadOnlyList<SupervisedExample> examples) => WithMetrics(_inner.Evaluate(examples), examples.Count);

        public bool ReportsPerplexity => false;

        private static StepResult WithMetrics(StepResult result, int rows) =>
            result with { Metrics = [new("copy/loss", result.Loss), new("rows", rows)] };
    }

    private static TrainingArguments Args(string outputDir) => new()
    {
        OutputDir = outputDir,
        PerDeviceTrainBatchSize = 2,
        PerDeviceEvalBatchSize = 3,
        GradientAccumulationSteps = 2,
        LearningRate = 0.05,
        NumTrainEpochs = 2,
        LoggingSteps = 2,
        SaveStrategy = "steps",
        SaveSteps = 3,
        EvalStrategy = "steps",
        EvalSteps = 4,
        DoEval = true,
        Seed = 7,
    };

    private static TrainResult Train(TinyLanguageModel model, TrainingArguments args, CancellationToken cancellation = default, IRunObserver? also = null) =>
        new Trainer<SupervisedExample>(model, args, TrainSet, EvalSet, new MetricStep(model),
            also is null ? new ResultFiles(args.OutputDir) : new RunObservers(new ResultFiles(args.OutputDir), also)).Train(cancellation);

    private static List<string> Deterministic(IEnumerable<LogEntry> history) =>
        history.Select(e => PythonJson.Dumps(e.Values.Where(kv => !kv.Key.EndsWith("_runtime") && !kv.Key.EndsWith("_per_second")).ToList(), sortKeys: true)).ToList();

    [Fact]
    public void Stored_metrics_are_logged_as_window_means_and_survive_a_resume()
    {
        using var reference = new TempDir();
        var args = Args(reference.Path);
        var progress = new StringWriter();
        var uninterrupted = Train(new TinyLanguageModel(seed: 1), args, also: new TerminalProgress(progress, live: false));

        var logs = uninterrupted.LogHistory.Where(e => e.TryGetDouble("loss") is not null).ToList();
        Assert.NotEmpty(logs);
        foreach (var entry in logs)
        {
            // The logged loss is the mean of the micro-batch losses of the window, rounded to 4 places.
            Assert.Equal(entry.TryGetDouble("loss")!.Value, entry.TryGetDouble("copy/loss")!.Value, 4e-4);
            Assert.Equal(2.0, entry.TryGetDouble("rows"));
            Assert.Equal(["loss", "learning_rate", "copy/loss", "rows", "epoch", "step"], entry.Values.Select(kv => kv.Key).Where(k => k != "grad_norm"));
        }
        var evaluations = uninterrupted.LogHistory.Where(e => e.TryGetDouble("eval_loss") is not null).ToList();
        Assert.NotEmpty(evaluations);
        foreach (var entry in evaluations)
        {
            // Batches of 3, 3 and 1: the mean over batches, not over examples.
            Assert.Equal(7 / 3.0, entry.TryGetDouble("eval_rows")!.Value, 12);
            Assert.NotNull(entry.TryGetDouble("eval_copy/loss"));
        }
        // The progress line shows the stage's metrics beside the loss.
        Assert.Contains(progress.ToString().Split('\n'), l => l.StartsWith("[step 2/", StringComparison.Ordinal) && l.Contains(" | copy/loss ") && l.Contains(" | rows 2.0000 | lr "));
        Assert.False(uninterrupted.Metrics.ContainsKey("perplexity"));
        Assert.True(uninterrupted.Metrics.ContainsKey("eval_copy/loss"));

        // Cancelled in step 5: saved at step 5 with step 5's metrics stored, logged at step 6 after the resume.
        using var dir = new TempDir();
        args.OutputDir = dir.Path;
        var cts = new CancellationTokenSource();
        var first = new TinyLanguageModel(seed: 1) { AfterForward = calls => { if (calls == 9) cts.Cancel(); } };
        var interrupted = Train(first, args, cts.Token);
        Assert.True(interrupted.Interrupted);
        Assert.Equal(5, interrupted.GlobalStep);

        args.ResumeFromLatestCheckpoint = true;
        var resumed = Train(new TinyLanguageModel(seed: 3), args);
        Assert.Equal(Deterministic(uninterrupted.LogHistory), Deterministic(resumed.LogHistory));
    }
}
