using System.Text;
using SharpTune.IO;

namespace SharpTune.Training.Trainer;

/// <summary>
/// <c>trainer_log.jsonl</c> as LLaMA-Factory's LogCallback writes it: one <c>json.dumps</c> line per log with
/// current_steps, total_steps, loss, eval_loss, reward (stage ppo), accuracy (rewards/accuracies of stage dpo), lr, epoch, percentage, elapsed_time, remaining_time (keys whose
/// value is missing are left out), plus throughput and total_tokens as LogCallback adds them when input tokens are
/// counted. The file is append-only: each line goes to disk in one write and is flushed, so a kill leaves whole lines
/// (a full disk may cut the last one short). A resumed run keeps the step and evaluation lines up to its checkpoint's
/// step and drops the rest: lines a crashed run wrote after it, a cut-off line, and the closing line of a run that
/// finished (it is written again when this one finishes), so each log appears once. Speed and time left are measured
/// over this process's own steps and tokens, not over the steps a resumed run inherited. It is an observer of the
/// trainer's <see cref="HistoryLogged"/> events, opened by the trainer once it knows the step it resumed at.
/// </summary>
public sealed class TrainerLogFile : IRunObserver
{
    public const string FileName = "trainer_log.jsonl";

    private readonly string _path;

    internal TrainerLogFile(string outputDir, int? resumedStep)
    {
        _path = Path.Combine(outputDir, FileName);
        if (!File.Exists(_path)) return;
        if (resumedStep is not { } step)
        {
            File.Delete(_path);
            return;
        }
        var kept = File.ReadAllLines(_path).Where(line => StepLogAt(line) is { } s && s <= step).ToList();
        AtomicFile.WriteText(_path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
    }

    public void On(RunEvent e)
    {
        if (e is HistoryLogged logged) Append(logged.Entry, logged.GlobalStep, logged.MaxSteps, logged.TokensSeen, logged.ThisProcess);
    }

    /// <param name="tokensSeen">Tokens of the whole run, those before a resume included (total_tokens).</param>
    private void Append(LogEntry entry, int globalStep, int maxSteps, long tokensSeen, RunSegment segment)
    {
        // LogCallback._timing divides by every global step and its throughput every token, including those a resumed
        // run inherited, which inflates both after a resume; this process's own steps and tokens measure its speed.
        double elapsedSeconds = segment.Elapsed.TotalSeconds;
        double perStep = segment.Steps != 0 ? elapsedSeconds / segment.Steps : 0;
        double remaining = (maxSteps - globalStep) * perStep;
        var line = new List<KeyValuePair<string, object?>>
        {
            new("current_steps", globalStep),
            new("total_steps", maxSteps),
        };
        AddIfPresent(line, "loss", entry.TryGetDouble("loss"));
        AddIfPresent(line, "eval_loss", entry.TryGetDouble("eval_loss"));
        AddIfPresent(line, "reward", entry.TryGetDouble("reward"));
        AddIfPresent(line, "accuracy", entry.TryGetDouble("rewards/accuracies"));
        AddIfPresent(line, "lr", entry.TryGetDouble("learning_rate"));
        AddIfPresent(line, "epoch", entry.TryGetDouble("epoch"));
        line.Add(new("percentage", PythonJson.Round(globalStep / (double)maxSteps * 100, 2)));
        line.Add(new("elapsed_time", PythonText.Timedelta(elapsedSeconds)));
        line.Add(new("remaining_time", PythonText.Timedelta(remaining)));
        if (tokensSeen > 0)
        {
            line.Add(new("throughput", PythonJson.Round(elapsedSeconds > 0 ? segment.Tokens / elapsedSeconds : 0, 2)));
            line.Add(new("total_tokens", tokensSeen));
        }
        // Unbuffered, so the whole line is one write call.
        using var stream = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);
        stream.Write(Encoding.UTF8.GetBytes(PythonJson.Dumps(line) + "\n"));
        stream.Flush(flushToDisk: true);
        FaultInjection.Point("log-appended");
    }

    private static void AddIfPresent(List<KeyValuePair<string, object?>> line, string key, double? value)
    {
        if (value is { } v) line.Add(new(key, v));
    }

    /// <summary>The step of a training or evaluation log line; null for a run's closing line and for a line cut short.</summary>
    private static long? StepLogAt(string line)
    {
        if (string.IsNullOrWhiteSpace(line)) return null;
        try
        {
            return PythonJson.Parse(line) is List<KeyValuePair<string, object?>> fields
                && fields.Any(kv => kv.Key is "loss" or "eval_loss")
                && fields.FirstOrDefault(kv => kv.Key == "current_steps").Value is long step ? step : null;
        }
        catch (System.Text.Json.JsonException)
        {
            // A line cut short by a crash.
            return null;
        }
    }
}
