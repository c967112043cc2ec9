using SharpTune.Training;

namespace SharpTune.Cli.Commands;

/// <summary>
/// Ctrl+C while a workflow's work runs cancels the workflow's token, so the work stops at its next safe point (train:
/// the step in progress finishes and a checkpoint is saved; compare, export and eval: before the next batch or tensor,
/// writing nothing). A second Ctrl+C, or one while it is not armed, ends the process at once.
/// </summary>
public sealed class CtrlCInterrupt : IRunObserver, IDisposable
{
    /// <summary>The exit code of a run stopped by Ctrl+C (128 + SIGINT, as a shell reports it).</summary>
    public const int ExitCode = 130;

    private readonly CancellationTokenSource _source = new();
    private readonly string _stopping;
    private readonly string? _armedAtStartOf;
    private bool _armed;

    /// <param name="stopping">What the run does once interrupted, for the line Ctrl+C prints.</param>
    /// <param name="armedAtStartOf">The task whose <see cref="RunStarted"/> arms the interrupt; null arms it at once.</param>
    private CtrlCInterrupt(string stopping, string? armedAtStartOf)
    {
        _stopping = stopping;
        _armedAtStartOf = armedAtStartOf;
        if (armedAtStartOf is null) Arm();
    }

    /// <summary>Armed from the training loop's start to its end: outside it nothing checks the token.</summary>
    public static CtrlCInterrupt ForTraining() => new("finishing this step and saving a checkpoint", "train");

    /// <summary>Armed for the whole run of a workflow that checks the token before each batch or tensor.</summary>
    public static CtrlCInterrupt Armed(string stopping) => new(stopping, null);

    public CancellationToken Token => _source.Token;

    public bool Interrupted => _source.IsCancellationRequested;

    public void On(RunEvent e)
    {
        if (e is RunStarted started && started.Plan.Task == _armedAtStartOf) Arm();
        else if (e is TrainingEnded or RunFinished or RunFailed) Disarm();
    }

    /// <summary>
    /// Runs <paramref name="body"/>; when Ctrl+C cancelled it, prints "stopped: <paramref name="stopped"/>" and returns
    /// <see cref="ExitCode"/>.
    /// </summary>
    public int Run(Func<int> body, string stopped)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException) when (Interrupted)
        {
            ConsoleRunObserver.Log($"stopped: {stopped}");
            return ExitCode;
        }
    }

    private void Arm()
    {
        if (_armed) return;
        Console.CancelKeyPress += OnCancel;
        _armed = true;
    }

    private void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        if (_source.IsCancellationRequested) return;
        e.Cancel = true;
        _source.Cancel();
        Console.Error.WriteLine();
        ConsoleRunObserver.Log($"interrupted: {_stopping} (press Ctrl+C again to abort at once)");
    }

    private void Disarm()
    {
        if (!_armed) return;
        Console.CancelKeyPress -= OnCancel;
        _armed = false;
    }

    public void Dispose()
    {
        Disarm();
        _source.Dispose();
    }
}
