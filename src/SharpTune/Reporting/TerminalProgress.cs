using System.Globalization;
using System.Text;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Reporting;

/// <summary>
/// A run's progress for a person watching, drawn from its events: one renderer for training, evaluation, prediction
/// and comparison. Live mode (stderr is a terminal) redraws one line after every optimizer step (bar, step/total, loss,
/// lr, tokens/s, elapsed and ETA) or generated batch (label, bar, examples, generated tokens/s, elapsed and ETA) and
/// prints log, evaluation and checkpoint messages above it; plain mode (redirected output, CI, tests) writes one line
/// per log, message and batch, and, given a heartbeat interval, a status line whenever nothing else was written for
/// that long (<see cref="ProgressHeartbeat"/>), from the moment the work starts.
/// </summary>
public sealed class TerminalProgress : IRunObserver
{
    private const int BarWidth = 24;
    private readonly TextWriter _writer;
    private readonly bool _live;
    private readonly Func<TimeSpan?> _heartbeatInterval;
    private ProgressSnapshot? _last;
    private bool _lineDrawn;
    private ProgressHeartbeat? _heartbeat;
    // Read by the heartbeat's timer thread: a string reference is replaced atomically.
    private volatile string _status = "";

    /// <param name="heartbeatInterval">
    /// Write a status line after this long without output (null: never): in plain mode, and for an evaluation, which
    /// draws no live line, also on a terminal.
    /// </param>
    public TerminalProgress(TextWriter writer, bool live, TimeSpan? heartbeatInterval = null)
        : this(writer, live, () => heartbeatInterval)
    {
    }

    /// <param name="heartbeatInterval">Read when a heartbeat starts, so a run that needs none never reads it.</param>
    private TerminalProgress(TextWriter writer, bool live, Func<TimeSpan?> heartbeatInterval)
    {
        _writer = writer;
        _live = live;
        _heartbeatInterval = heartbeatInterval;
    }

    /// <summary>Standard error, live when it is a terminal, with the heartbeat interval of <see cref="ProgressHeartbeat.ConfiguredInterval"/>.</summary>
    public static TerminalProgress ForStandardError() =>
        new(Console.Error, !Console.IsErrorRedirected, () => ProgressHeartbeat.ConfiguredInterval());

    public void On(RunEvent e)
    {
        switch (e)
        {
            case RunStarted { Plan.Task: "train" }:
                Begin("[training]");
                break;
            case RunStarted { Plan: { Task: "eval" } plan }:
                Begin($"[eval 0/{plan.Examples} examples]", evenWhenLive: true);
                break;
            case EvaluationProgressed p:
                _status = $"[eval {p.Done}/{p.Total} examples]";
                break;
            case Evaluated { Step: null }:
                StopHeartbeat();
                break;
            case Evaluated { AfterTraining: true } evaluated:
                Message(string.Create(CultureInfo.InvariantCulture, $"eval_loss {evaluated.Result.Loss:0.0000} | perplexity {evaluated.Result.Perplexity:0.000}"));
                break;
            case Evaluated evaluated:
                Message(string.Create(CultureInfo.InvariantCulture,
                    $"[step {evaluated.Step}/{evaluated.MaxSteps}] eval_loss {evaluated.Result.Loss:0.0000} | perplexity {evaluated.Result.Perplexity:0.000}"));
                break;
            case StepCompleted step:
                _last = step.Progress;
                _status = $"[step {step.Progress.Step}/{step.Progress.MaxSteps} {Percent(step.Progress)}]";
                if (_live) Redraw();
                break;
            case StepLogged logged:
                _last = logged.Progress;
                Message(FormatLogLine(logged.Progress, logged.Entry));
                break;
            case TrainerNote note:
                Message(note.Text);
                break;
            case CheckpointSaved saved:
                Message(saved.Removed.Count == 0
                    ? $"saved {saved.Path}"
                    : $"saved {saved.Path} (removed {string.Join(", ", saved.Removed.Select(Path.GetFileName))}: save_total_limit {saved.SaveTotalLimit})");
                break;
            case TrainingEnded or PredictionEnded:
                Finish();
                break;
            case PredictionStarted started:
                Begin($"[{started.Label}]");
                break;
            case PredictionProgressed batch:
                BatchDone(batch);
                break;
        }
    }

    private void Begin(string status, bool evenWhenLive = false)
    {
        _status = status;
        if (_heartbeat is null && (!_live || evenWhenLive) && _heartbeatInterval() is { } interval)
            _heartbeat = new ProgressHeartbeat(_writer, interval, () => _status);
    }

    private void Message(string text)
    {
        if (_live && _lineDrawn) _writer.Write("\r\u001b[K");
        if (_heartbeat is not null) _heartbeat.WriteLine(text);
        else _writer.WriteLine(text);
        _lineDrawn = false;
        if (_live) Redraw();
        _writer.Flush();
    }

    private void BatchDone(PredictionProgressed p)
    {
        double seconds = p.Elapsed.TotalSeconds;
        double tokensPerSecond = seconds > 0 ? p.GeneratedTokens / seconds : 0;
        double remaining = p.Done > 0 ? seconds / p.Done * (p.Total - p.Done) : 0;
        string counts = string.Create(CultureInfo.InvariantCulture,
            $"{p.Done}/{p.Total} examples | {tokensPerSecond:0.0} generated tok/s | elapsed {Clock(seconds)} | eta {Clock(remaining)}");
        if (!_live)
        {
            _status = $"[{p.Label} {p.Done}/{p.Total} examples]";
            if (_heartbeat is not null) _heartbeat.WriteLine($"[{p.Label} {counts}]");
            else
            {
                _writer.WriteLine($"[{p.Label} {counts}]");
                _writer.Flush();
            }
            return;
        }
        int filled = p.Total > 0 ? (int)Math.Round(BarWidth * (double)p.Done / p.Total) : BarWidth;
        var line = new StringBuilder("\r").Append(p.Label).Append(" [").Append('#', filled).Append('.', BarWidth - filled).Append("] ").Append(counts).Append("\u001b[K");
        _writer.Write(line.ToString());
        _writer.Flush();
        _lineDrawn = true;
    }

    private void StopHeartbeat()
    {
        _heartbeat?.Dispose();
        _heartbeat = null;
    }

    /// <summary>Ends the live line so later output starts on a fresh one, and stops the heartbeat.</summary>
    private void Finish()
    {
        StopHeartbeat();
        if (_live && _lineDrawn) _writer.WriteLine();
        _lineDrawn = false;
        _last = null;
        _writer.Flush();
    }

    /// <summary>
    /// A logged step: loss and grad_norm, then every metric the stage logged beside them (rewards/accuracies, …), then
    /// the learning rate, epoch, speed and times.
    /// </summary>
    internal static string FormatLogLine(ProgressSnapshot s, LogEntry? entry = null)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"[step {s.Step}/{s.MaxSteps} {Percent(s)}]");
        if (s.Loss is { } loss) sb.Append(CultureInfo.InvariantCulture, $" loss {loss:0.0000}");
        if (s.GradNorm is { } norm) sb.Append(CultureInfo.InvariantCulture, $" | grad_norm {norm:0.0000}");
        foreach (var (key, _) in entry?.Values ?? [])
            if (key is not ("loss" or "grad_norm" or "learning_rate" or "epoch" or "step") && entry!.TryGetDouble(key) is { } value)
                sb.Append(CultureInfo.InvariantCulture, $" | {key} {value:0.0000}");
        sb.Append(CultureInfo.InvariantCulture, $" | lr {s.LearningRate:0.000e+00} | epoch {s.Epoch:0.00} | {s.TokensPerSecond:0} tok/s");
        sb.Append(CultureInfo.InvariantCulture, $" | elapsed {Clock(s.Elapsed)} | eta {Clock(s.Remaining)}");
        return sb.ToString();
    }

    private void Redraw()
    {
        if (_last is not { } s) return;
        int filled = s.MaxSteps > 0 ? (int)Math.Round(BarWidth * Math.Min(1.0, s.Step / (double)s.MaxSteps)) : 0;
        var sb = new StringBuilder("\r");
        sb.Append('[').Append('#', filled).Append('.', BarWidth - filled).Append(']');
        sb.Append(CultureInfo.InvariantCulture, $" {s.Step}/{s.MaxSteps} {Percent(s)}");
        if (s.Loss is { } loss) sb.Append(CultureInfo.InvariantCulture, $" loss {loss:0.0000}");
        sb.Append(CultureInfo.InvariantCulture, $" lr {s.LearningRate:0.00e+00} {s.TokensPerSecond:0} tok/s [{Clock(s.Elapsed)}<{Clock(s.Remaining)}]");
        sb.Append("\u001b[K");
        _writer.Write(sb.ToString());
        _writer.Flush();
        _lineDrawn = true;
    }

    private static string Percent(ProgressSnapshot s) =>
        (s.MaxSteps > 0 ? 100.0 * s.Step / s.MaxSteps : 100.0).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string Clock(double seconds) => PythonText.Timedelta(seconds);

    private static string Clock(TimeSpan t) => Clock(t.TotalSeconds);
}
