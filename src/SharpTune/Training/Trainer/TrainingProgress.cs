using System.Globalization;
using System.Text;

namespace SharpTune.Training.Trainer;

/// <summary>Where training stands after an optimizer step, for the progress display.</summary>
public readonly record struct ProgressSnapshot(
    int Step,
    int MaxSteps,
    double? Loss,
    double LearningRate,
    double? GradNorm,
    double Epoch,
    double TokensPerSecond,
    TimeSpan Elapsed,
    TimeSpan Remaining);

/// <summary>
/// Training progress for a person watching. Live mode (stderr is a terminal) redraws one line after every
/// optimizer step (bar, step/total, loss, lr, tokens/s, elapsed and ETA) and prints log, evaluation and checkpoint
/// messages above it; plain mode (redirected output, CI, tests) writes one line per log and per message, and, given a
/// heartbeat interval, a status line whenever nothing else was written for that long (<see cref="ProgressHeartbeat"/>).
/// </summary>
public sealed class TrainingProgress
{
    private const int BarWidth = 24;
    private readonly TextWriter _writer;
    private readonly bool _live;
    private ProgressSnapshot? _last;
    private bool _lineDrawn;
    private ProgressHeartbeat? _heartbeat;
    // Read by the heartbeat's timer thread: a string reference is replaced atomically.
    private volatile string _stepStatus = "[training]";

    /// <param name="heartbeatInterval">Plain mode only: write a status line after this long without output (null: never).</param>
    public TrainingProgress(TextWriter writer, bool live, TimeSpan? heartbeatInterval = null)
    {
        _writer = writer;
        _live = live;
        if (!live && heartbeatInterval is { } interval)
            _heartbeat = new ProgressHeartbeat(writer, interval, () => _stepStatus);
    }

    /// <summary>Standard error, live when it is a terminal; redirected, with the configured heartbeat.</summary>
    public static TrainingProgress ForStandardError() =>
        new(Console.Error, !Console.IsErrorRedirected, Console.IsErrorRedirected ? ProgressHeartbeat.ConfiguredInterval() : null);

    /// <summary>Writes nothing (library callers that report progress their own way).</summary>
    public static TrainingProgress Silent { get; } = new(TextWriter.Null, live: false);

    public void StepDone(ProgressSnapshot snapshot)
    {
        _last = snapshot;
        _stepStatus = $"[step {snapshot.Step}/{snapshot.MaxSteps} {Percent(snapshot)}]";
        if (_live) Redraw();
    }

    /// <summary>A training log (every logging_steps): a line of its own in both modes.</summary>
    public void Logged(ProgressSnapshot snapshot)
    {
        _last = snapshot;
        Message(FormatLogLine(snapshot));
    }

    public void Message(string text)
    {
        if (_live && _lineDrawn) _writer.Write("\r\u001b[K");
        if (_heartbeat is not null) _heartbeat.WriteLine(text);
        else _writer.WriteLine(text);
        _lineDrawn = false;
        if (_live) Redraw();
        _writer.Flush();
    }

    /// <summary>Ends the live line so later output starts on a fresh one, and stops the heartbeat.</summary>
    public void Finish()
    {
        _heartbeat?.Dispose();
        _heartbeat = null;
        if (_live && _lineDrawn) _writer.WriteLine();
        _lineDrawn = false;
        _writer.Flush();
    }

    internal static string FormatLogLine(ProgressSnapshot s)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"[step {s.Step}/{s.MaxSteps} {Percent(s)}]");
        if (s.Loss is { } loss) sb.Append(CultureInfo.InvariantCulture, $" loss {loss:0.0000}");
        if (s.GradNorm is { } norm) sb.Append(CultureInfo.InvariantCulture, $" | grad_norm {norm:0.0000}");
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

    private static string Clock(TimeSpan t) => PythonText.Timedelta(t.TotalSeconds);
}
