using System.Diagnostics;
using SharpTune.Reporting;
using SharpTune.Tests.Cli;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Trainer;

/// <summary>
/// Runs whose output is not a terminal print a status line whenever nothing was written for the heartbeat interval:
/// during a long optimizer step, evaluation or generated batch.
/// </summary>
public sealed class ProgressHeartbeatTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(50);

    /// <summary>A training run of 12 steps, as the workflow announces it (the heartbeat starts with the run).</summary>
    private static readonly RunPlan TrainingRun = new("train", "sft", 24, new TrainingPlan(24, 2, 1, 12, 12, 12, 1, 24));

    private static readonly TrainResult Ended = new(false, 12, 12, 1, null, new Dictionary<string, double>(), []);

    /// <summary>A writer whose text can be read while the heartbeat's timer thread writes to it.</summary>
    private sealed class SharedWriter : StringWriter
    {
        private readonly object _lock = new();
        public override void Write(char value) { lock (_lock) base.Write(value); }
        public override void Write(string? value) { lock (_lock) base.Write(value); }
        public override void WriteLine(string? value) { lock (_lock) base.WriteLine(value); }
        public string Text { get { lock (_lock) return ToString(); } }
    }

    /// <summary>Waits (up to 20 s, for a loaded machine) until the writer holds a line containing <paramref name="text"/>.</summary>
    private static string[] WaitForLine(SharedWriter writer, string text)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            string[] lines = writer.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (lines.Any(l => l.Contains(text, StringComparison.Ordinal))) return lines;
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no line containing '{text}' within 20 s; got: {writer.Text}");
    }

    [Fact]
    public void WritesTheStatusWhenNothingWasWrittenForTheInterval()
    {
        var writer = new SharedWriter();
        using (var heartbeat = new ProgressHeartbeat(writer, Short, () => "[eval 3/10 examples]"))
        {
            string[] lines = WaitForLine(writer, "working");
            Assert.Matches(@"^\[eval 3/10 examples\] working \| elapsed 0:00:\d\d(\.\d+)?$", lines[0]);
        }
        string afterStop = writer.Text;
        Thread.Sleep(200);
        Assert.Equal(afterStop, writer.Text);
    }

    [Fact]
    public void StaysQuietWhileOtherLinesAreWritten()
    {
        var writer = new SharedWriter();
        using var heartbeat = new ProgressHeartbeat(writer, TimeSpan.FromSeconds(3), () => "[status]");
        for (int i = 0; i < 20; i++)
        {
            heartbeat.WriteLine($"line {i}");
            Thread.Sleep(50);
        }
        Assert.DoesNotContain("working", writer.Text);
        Assert.Equal(20, writer.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void TrainingProgressInPlainModeReportsTheLastStepDuringALongOne()
    {
        var writer = new SharedWriter();
        var progress = new TerminalProgress(writer, live: false, heartbeatInterval: Short);
        progress.On(new RunStarted(TrainingRun));
        progress.On(new StepCompleted(new ProgressSnapshot(3, 12, 1.5, 1e-4, 0.5, 0.25, 100, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(9))));
        string[] lines = WaitForLine(writer, "[step 3/12 25.0%] working");
        Assert.Contains(lines, l => l.StartsWith("[step 3/12 25.0%] working | elapsed ", StringComparison.Ordinal));
        progress.On(new TrainingEnded(Ended));
        string afterFinish = writer.Text;
        Thread.Sleep(200);
        Assert.Equal(afterFinish, writer.Text);
    }

    [Fact]
    public void TrainingProgressBeforeTheFirstStep()
    {
        var writer = new SharedWriter();
        var progress = new TerminalProgress(writer, live: false, heartbeatInterval: Short);
        progress.On(new RunStarted(TrainingRun));
        Assert.StartsWith("[training] working | elapsed ", WaitForLine(writer, "working")[0]);
        progress.On(new TrainingEnded(Ended));
    }

    [Fact]
    public void PredictionProgressInPlainModeReportsTheExamplesDoneDuringALongBatch()
    {
        var writer = new SharedWriter();
        var progress = new TerminalProgress(writer, live: false, heartbeatInterval: Short);
        progress.On(new PredictionStarted("predict", 8));
        progress.On(new PredictionProgressed("predict", 2, 8, 40, TimeSpan.FromSeconds(4)));
        string[] lines = WaitForLine(writer, "[predict 2/8 examples] working");
        Assert.Contains("[predict 2/8 examples | 10.0 generated tok/s | elapsed 0:00:04 | eta 0:00:12]", lines);
        Assert.Contains(lines, l => l.StartsWith("[predict 2/8 examples] working | elapsed ", StringComparison.Ordinal));
        progress.On(new PredictionEnded("predict"));
    }

    [Fact]
    public void AnEvaluationKeepsItsHeartbeatOnATerminalWhereTrainingDrawsItsLiveLineInstead()
    {
        var writer = new SharedWriter();
        var progress = new TerminalProgress(writer, live: true, heartbeatInterval: Short);
        progress.On(new RunStarted(new RunPlan("eval", "sft", 5, BatchSize: 2)));
        WaitForLine(writer, "[eval 0/5 examples] working | elapsed ");
        progress.On(new EvaluationProgressed(2, 5));
        WaitForLine(writer, "[eval 2/5 examples] working | elapsed ");
        progress.On(new Evaluated(null, 0, new EvalResult(1.5, 1, 5, 3), AfterTraining: false));
        string afterEvaluation = writer.Text;
        Thread.Sleep(200);
        Assert.Equal(afterEvaluation, writer.Text);

        var training = new SharedWriter();
        var live = new TerminalProgress(training, live: true, heartbeatInterval: Short);
        live.On(new RunStarted(TrainingRun));
        Thread.Sleep(200);
        Assert.DoesNotContain("working", training.Text);
        live.On(new TrainingEnded(Ended));
    }

    [Fact]
    public void WithoutAnIntervalThereIsNoHeartbeat()
    {
        var writer = new SharedWriter();
        var progress = new TerminalProgress(writer, live: false);
        progress.On(new RunStarted(TrainingRun));
        Thread.Sleep(200);
        Assert.Equal("", writer.Text);
        progress.On(new TrainingEnded(Ended));
    }

    [Fact]
    public void LossEvaluatorReportsTheExamplesDoneAfterEachBatch()
    {
        var done = new List<int>();
        var evaluator = new LossEvaluator(new TinyLanguageModel(seed: 1), TinyLanguageModel.Examples(7, seed: 6), batchSize: 3, padTokenId: 0)
        {
            ExamplesDone = done.Add,
        };
        evaluator.Evaluate();
        Assert.Equal([3, 6, 7], done);
    }
}

/// <summary>SHARPTUNE_PROGRESS_SECONDS is process-wide: these run with the CLI tests, which read it, never beside them.</summary>
[Collection(CliCollection.Name)]
public sealed class ProgressIntervalVariableTests
{
    [Theory]
    [InlineData(null, 30.0)]
    [InlineData("", 30.0)]
    [InlineData("5", 5.0)]
    [InlineData("0.5", 0.5)]
    public void TheIntervalComesFromTheEnvironment(string? value, double seconds) =>
        WithVariable(value, () => Assert.Equal(TimeSpan.FromSeconds(seconds), ProgressHeartbeat.ConfiguredInterval()));

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("soon")]
    public void AnIntervalThatIsNotAPositiveNumberIsAnError(string value) =>
        WithVariable(value, () => Assert.Equal($"SHARPTUNE_PROGRESS_SECONDS must be a positive number of seconds, got '{value}'",
            Assert.Throws<ArgumentException>(() => ProgressHeartbeat.ConfiguredInterval()).Message));

    private static void WithVariable(string? value, Action body)
    {
        string? saved = Environment.GetEnvironmentVariable(ProgressHeartbeat.IntervalVariable);
        Environment.SetEnvironmentVariable(ProgressHeartbeat.IntervalVariable, value);
        try
        {
            body();
        }
        finally
        {
            Environment.SetEnvironmentVariable(ProgressHeartbeat.IntervalVariable, saved);
        }
    }
}
