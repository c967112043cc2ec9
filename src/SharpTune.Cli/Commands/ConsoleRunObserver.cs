using System.Globalization;
using SharpTune.Reporting;
using SharpTune.Training;

namespace SharpTune.Cli.Commands;

/// <summary>
/// A workflow's events on the console: notes as "[sharptune] ..." lines on stderr, a report block as it is, and the
/// progress of training, evaluation and generation through one <see cref="TerminalProgress"/> (made when the first
/// one starts, so a bad SHARPTUNE_PROGRESS_SECONDS fails where the progress begins).
/// </summary>
public sealed class ConsoleRunObserver : IRunObserver
{
    private TerminalProgress? _progress;

    public void On(RunEvent e)
    {
        switch (e)
        {
            case RunNote note:
                Log(note.Text);
                break;
            case RunReport report:
                Console.Error.Write(report.Text);
                break;
            case RunFinished or RunFailed:
                break;
            case RunStarted { Plan: { Task: "train", Training: { } plan } started }:
                Log($"training {plan.MaxSteps} steps on {started.Examples} examples; Ctrl+C saves a checkpoint and stops");
                Progress.On(e);
                break;
            default:
                Progress.On(e);
                break;
        }
    }

    private TerminalProgress Progress => _progress ??= TerminalProgress.ForStandardError();

    public static void Log(string message) => Console.Error.WriteLine($"[sharptune] {message}");

    /// <summary>Metrics on stdout, one "key = value" line each (doubles to 6 significant digits).</summary>
    public static void PrintMetrics(IEnumerable<KeyValuePair<string, object?>> metrics)
    {
        foreach (var (key, value) in metrics)
            Console.WriteLine(value is double d ? $"{key} = {d.ToString("G6", CultureInfo.InvariantCulture)}" : $"{key} = {value}");
    }
}
