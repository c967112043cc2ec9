using SharpTune.Hparams;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.Evaluation;
using SharpTune.Tests.IO;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Tests.Workflows;

/// <summary><see cref="BenchmarkWorkflow"/> (`sharptune eval`) as a library call, watched by a recording observer.</summary>
public sealed class BenchmarkWorkflowTests(BenchmarkTests.AlwaysBModel model) : IClassFixture<BenchmarkTests.AlwaysBModel>, IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void CancellingAfterTheFirstSubjectStopsBeforeTheNextBatchAndSavesNothing()
    {
        string saveDir = _dir.File("results");
        var cfg = SftConfig.Load(EvalCommandTests.WriteConfig(_dir, model.Dir, saveDir), [], ConfigUse.Eval);
        using var cancellation = new CancellationTokenSource();
        // The first subject's accuracy line is the benchmark's progress.
        var recorder = new RecordingObserver { Then = e => { if (e is RunNote { Text: var text } && text.StartsWith("[1/2] ", StringComparison.Ordinal)) cancellation.Cancel(); } };

        Assert.Throws<OperationCanceledException>(() => BenchmarkWorkflow.Run(cfg, cancellation.Token, recorder));

        var subjects = recorder.Events.OfType<RunNote>().Where(n => n.Text.StartsWith('[')).Select(n => n.Text).ToList();
        Assert.Equal(["[1/2] law (Humanities): 1/2 correct"], subjects);
        Assert.Equal("benchmark", Assert.IsType<RunFailed>(recorder.Events[^1]).Task);
        Assert.False(Directory.Exists(saveDir));
    }
}
