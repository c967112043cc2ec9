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
/// messages above it; plain mode (redirected output, CI, tests) writes one line per log and per message only.
/// </summary>
public sealed class TrainingProgress
{
    private const int BarWidth = 24;
    private readonly TextWriter _writer;
    private readonly bool _live;
    private ProgressSnapshot? _last;
    private bool _lineDrawn;

    public TrainingProgress(TextWriter writer, bool live)
    {
        _writer = writer;
        _live = live;
    }

    /// <summary>Standard error, live when it is a terminal.</summary>
    public static TrainingProgress ForStandardError() => new(Console.Error, !Console.IsErrorRedirected);

    /// <summary>Writes nothing (library callers that report progress their own way).</summary>
    public static TrainingProgress Silent { get; } = new(TextWriter.Null, live: false);

    public void StepDone(ProgressSnapshot snapshot)
    {
        _last = snapshot;
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
        _writer.WriteLine(text);
        _lineDrawn = false;
        if (_live) Redraw();
        _writer.Flush();
    }

    /// <summary>Ends the live line so later output starts on a fresh one.</summary>
    public void Finish()
    {
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

    private static string Clock(TimeSpan t) => TrainerLogFile.PythonTimedelta(t.TotalSeconds);
}
