using System.Globalization;
using System.Text;
using SharpTune.Training.Trainer;

namespace SharpTune.Evaluation.Prediction;

/// <summary>
/// Prediction progress for a person watching: live mode (stderr is a terminal) redraws one bar line after every
/// batch (examples done, generated tokens/s, elapsed and ETA); plain mode (redirected output, tests) writes one
/// line per batch. The label names the run ("predict", or the model a comparison is answering with).
/// </summary>
public sealed class PredictionProgress(TextWriter writer, bool live, string label = "predict")
{
    private const int BarWidth = 24;
    private bool _lineDrawn;

    /// <summary>Standard error, live when it is a terminal.</summary>
    public static PredictionProgress ForStandardError(string label = "predict") => new(Console.Error, !Console.IsErrorRedirected, label);

    public static PredictionProgress Silent { get; } = new(TextWriter.Null, live: false);

    public void BatchDone(int done, int total, long generatedTokens, TimeSpan elapsed)
    {
        double seconds = elapsed.TotalSeconds;
        double tokensPerSecond = seconds > 0 ? generatedTokens / seconds : 0;
        double remaining = done > 0 ? seconds / done * (total - done) : 0;
        string counts = string.Create(CultureInfo.InvariantCulture,
            $"{done}/{total} examples | {tokensPerSecond:0.0} generated tok/s | elapsed {Clock(seconds)} | eta {Clock(remaining)}");
        if (!live)
        {
            writer.WriteLine($"[{label} {counts}]");
            writer.Flush();
            return;
        }
        int filled = total > 0 ? (int)Math.Round(BarWidth * (double)done / total) : BarWidth;
        var line = new StringBuilder("\r").Append(label).Append(" [").Append('#', filled).Append('.', BarWidth - filled).Append("] ").Append(counts).Append("\u001b[K");
        writer.Write(line.ToString());
        writer.Flush();
        _lineDrawn = true;
    }

    /// <summary>Ends the live line so later output starts on a fresh one.</summary>
    public void Finish()
    {
        if (_lineDrawn) writer.WriteLine();
        _lineDrawn = false;
        writer.Flush();
    }

    private static string Clock(double seconds) => TrainerLogFile.PythonTimedelta(seconds);
}
