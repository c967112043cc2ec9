using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Tests.EndToEnd;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.Workflows;

/// <summary><see cref="CompareWorkflow"/> and <see cref="ExportWorkflow"/> as library calls, watched by a recording observer.</summary>
public sealed class CompareAndExportWorkflowTests : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _tiny;
    private readonly string _adapter;

    public CompareAndExportWorkflowTests(TinyModelFixture tiny)
    {
        _tiny = tiny;
        _adapter = tiny.PathFor("adapter");
        if (!File.Exists(Path.Combine(_adapter, "adapter_model.safetensors")))
            TrainingWorkflow.Run(new TrainingRequest(SftConfig.Load(tiny.WriteConfig("adapter", _adapter, ("max_steps", 2), ("save_steps", 100)), [], ConfigUse.Train), SkipMemoryCheck: true),
                CancellationToken.None, RunObservers.None);
    }

    [Fact]
    public void ACompareRunReportsEachModelsAnswersAsItGeneratesThem()
    {
        string questions = _tiny.PathFor("questions.txt");
        File.WriteAllLines(questions, ["Who are you?", "What can you do?", "Hello"]);
        var request = new CompareRequest(_tiny.ModelDir, [_adapter], questions, [], TinyModelFixture.BundledData, null, "qwen", null,
            BatchSize: 2, _tiny.PathFor("compare"), null, o => o with { MaxNewTokens = 4 });
        var recorder = new RecordingObserver();
        var result = CompareWorkflow.Run(request, CancellationToken.None, recorder);

        var events = recorder.Events;
        var plan = Assert.IsType<RunStarted>(events[recorder.IndexOf<RunStarted>()]).Plan;
        Assert.Equal(("compare", 3, (int?)2), (plan.Task, plan.Examples, plan.BatchSize));
        // Each model in turn: started, a batch of two and one of one, ended.
        var generation = events.Where(e => e is PredictionStarted or PredictionProgressed or PredictionEnded).Select(e => e switch
        {
            PredictionStarted s => $"{s.Label} started {s.Total}",
            PredictionProgressed p => $"{p.Label} {p.Done}/{p.Total}",
            PredictionEnded d => $"{d.Label} ended",
            _ => "",
        });
        Assert.Equal(["base started 3", "base 2/3", "base 3/3", "base ended", "adapter started 3", "adapter 2/3", "adapter 3/3", "adapter ended"], generation);
        Assert.Equal(["base", "adapter"], result.Columns.Select(c => c.Name));
        Assert.All(result.Columns, c => Assert.Equal(3, c.Answers.Count));
        Assert.True(File.Exists(result.MarkdownPath) && File.Exists(result.HtmlPath));
        Assert.Equal(new RunNote($"report written to {result.MarkdownPath} and {result.HtmlPath}"), events[^2]);
        Assert.Equal("compare", Assert.IsType<RunFinished>(events[^1]).Task);
    }

    [Fact]
    public void CancellingACompareAfterTheFirstBatchStopsBeforeTheNextAndWritesNoReport()
    {
        string questions = _tiny.PathFor("questions-cancelled.txt");
        File.WriteAllLines(questions, ["Who are you?", "What can you do?", "Hello"]);
        string output = _tiny.PathFor("compare-cancelled");
        var request = new CompareRequest(_tiny.ModelDir, [_adapter], questions, [], TinyModelFixture.BundledData, null, "qwen", null,
            BatchSize: 2, output, null, o => o with { MaxNewTokens = 4 });
        using var cancellation = new CancellationTokenSource();
        var recorder = new RecordingObserver { Then = e => { if (e is PredictionProgressed) cancellation.Cancel(); } };

        Assert.Throws<OperationCanceledException>(() => CompareWorkflow.Run(request, cancellation.Token, recorder));

        var progressed = Assert.Single(recorder.Events.OfType<PredictionProgressed>());
        Assert.Equal(("base", 2, 3), (progressed.Label, progressed.Done, progressed.Total));
        Assert.Equal("compare", Assert.IsType<RunFailed>(recorder.Events[^1]).Task);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void CancellingAnExportAfterTheFirstTensorLeavesTheEarlierExportAsItWas()
    {
        string exportDir = _tiny.PathFor("merged-then-cancelled");
        var cfg = SftConfig.Load(_tiny.WriteConfig("export-cancelled", _tiny.PathFor("unused"),
            ("do_train", null), ("dataset", null), ("adapter_name_or_path", _adapter), ("export_dir", exportDir)), [], ConfigUse.Export);
        var written = ExportWorkflow.Run(cfg, CancellationToken.None, RunObservers.None);
        var before = written.ToDictionary(f => f, f => File.ReadAllBytes(Path.Combine(exportDir, f)));
        File.WriteAllText(Path.Combine(exportDir, "config.json"), "{}");
        before["config.json"] = File.ReadAllBytes(Path.Combine(exportDir, "config.json"));

        using var cancellation = new CancellationTokenSource();
        var recorder = new RecordingObserver { Then = e => { if (e is ExportProgressed) cancellation.Cancel(); } };
        Assert.Throws<OperationCanceledException>(() => ExportWorkflow.Run(cfg, cancellation.Token, recorder));

        var progressed = Assert.Single(recorder.Events.OfType<ExportProgressed>());
        Assert.Equal(1, progressed.Done);
        Assert.True(progressed.Total > 1);
        Assert.Equal("export", Assert.IsType<RunFailed>(recorder.Events[^1]).Task);
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(exportDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(exportDir, file)));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(Path.GetDirectoryName(exportDir)!), e => AtomicFile.IsTemporary(Path.GetFileName(e)));
    }

    [Fact]
    public void AnExportRunReportsWhatItWroteAndACancelledOneFailsBeforeWriting()
    {
        string exportDir = _tiny.PathFor("merged");
        SftConfig Config() => SftConfig.Load(_tiny.WriteConfig("export", _tiny.PathFor("unused"),
            ("do_train", null), ("dataset", null), ("adapter_name_or_path", _adapter), ("export_dir", exportDir)), [], ConfigUse.Export);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var refused = new RecordingObserver();
        Assert.Throws<OperationCanceledException>(() => ExportWorkflow.Run(Config(), cancelled.Token, refused));
        Assert.Equal("export", Assert.IsType<RunFailed>(refused.Events[^1]).Task);
        Assert.False(Directory.Exists(exportDir));

        var recorder = new RecordingObserver();
        var written = ExportWorkflow.Run(Config(), CancellationToken.None, recorder);
        Assert.Contains("model.safetensors", written);
        Assert.All(written, f => Assert.True(File.Exists(Path.Combine(exportDir, f)), f));
        Assert.Equal(new RunNote($"exported the base merged with {_adapter} to {exportDir}"), recorder.Events[^2]);
        var finished = Assert.IsType<RunFinished>(recorder.Events[^1]);
        Assert.Equal(written, finished.Results.Select(r => (string)r.Value!));
    }
}
