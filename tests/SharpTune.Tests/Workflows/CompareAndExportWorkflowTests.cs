using SharpTune.Hparams;
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
