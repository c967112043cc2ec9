using System.Globalization;
using System.Text;
using SharpTune.Training.Trainer;

namespace SharpTune.Evaluation.Prediction;

/// <summary>
/// Prediction progress for a person watching: live mode (stderr is a terminal) redraws one bar line after every
/// batch (examples done, generated tokens/s, elapsed and ETA); plain mode (redirected output, tests) writes one
/// line per batch, and, given a heartbeat interval, a status line whenever a batch takes longer than that
/// (<see cref="ProgressHeartbeat"/>). The label names the run ("predict", or the model a comparison is answering with).
/// </summary>
public sealed class PredictionProgress
{
    private const int BarWidth = 24;
    private readonly TextWriter _writer;
    private readonly bool _live;
    private readonly string _label;
    private ProgressHeartbeat? _heartbeat;
    // Read by the heartbeat's timer thread: a string reference is replaced atomically.
    private volatile string _doneStatus;
    private bool _lineDrawn;

    /// <param name="heartbeatInterval">Plain mode only: write a status line after this long without output (null: never).</param>
    public PredictionProgress(TextWriter writer, bool live, string label = "predict", TimeSpan? heartbeatInterval = null)
    {
        _writer = writer;
        _live = live;
        _label = label;
        _doneStatus = $"[{label}]";
        if (!live && heartbeatInterval is { } interval)
            _heartbeat = new ProgressHeartbeat(writer, interval, () => _doneStatus);
    }

    /// <summary>Standard error, live when it is a terminal; redirected, with the configured heartbeat.</summary>
    public static PredictionProgress ForStandardError(string label = "predict") =>
        new(Console.Error, !Console.IsErrorRedirected, label, Console.IsErrorRedirected ? ProgressHeartbeat.ConfiguredInterval() : null);

    public static PredictionProgress Silent { get; } = new(TextWriter.Null, live: false);

    public void BatchDone(int done, int total, long generatedTokens, TimeSpan elapsed)
    {
        double seconds = elapsed.TotalSeconds;
        double tokensPerSecond = seconds > 0 ? generatedTokens / seconds : 0;
        double remaining = done > 0 ? seconds / done * (total - done) : 0;
        string counts = string.Create(CultureInfo.InvariantCulture,
            $"{done}/{total} examples | {tokensPerSecond:0.0} generated tok/s | elapsed {Clock(seconds)} | eta {Clock(remaining)}");
        if (!_live)
        {
            _doneStatus = $"[{_label} {done}/{total} examples]";
            if (_heartbeat is not null) _heartbeat.WriteLine($"[{_label} {counts}]");
            else
            {
                _writer.WriteLine($"[{_label} {counts}]");
                _writer.Flush();
            }
            return;
        }
        int filled = total > 0 ? (int)Math.Round(BarWidth * (double)done / total) : BarWidth;
        var line = new StringBuilder("\r").Append(_label).Append(" [").Append('#', filled).Append('.', BarWidth - filled).Append("] ").Append(counts).Append("\u001b[K");
        _writer.Write(line.ToString());
        _writer.Flush();
        _lineDrawn = true;
    }

    /// <summary>Ends the live line so later output starts on a fresh one, and stops the heartbeat.</summary>
    public void Finish()
    {
        _heartbeat?.Dispose();
        _heartbeat = null;
        if (_lineDrawn) _writer.WriteLine();
        _lineDrawn = false;
        _writer.Flush();
    }

    private static string Clock(double seconds) => PythonText.Timedelta(seconds);
}
