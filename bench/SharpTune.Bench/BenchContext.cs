using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace SharpTune.Bench;

public sealed record BenchResult(string Workload, string Preset, int Seq, string Metric, double Value, string Unit)
{
    /// <summary>
    /// The results among a process's output lines: each line that is a JSON object as --json writes it (the bench's
    /// children and bench/pytorch/workloads.py both write them); other lines (comments, warnings) are passed over.
    /// </summary>
    public static List<BenchResult> ReadJsonLines(TextReader reader, string source)
    {
        var results = new List<BenchResult>();
        string? line;
        for (int number = 1; (line = reader.ReadLine()) is not null; number++)
        {
            if (!line.StartsWith('{')) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                results.Add(new BenchResult(root.GetProperty("workload").GetString()!, root.GetProperty("preset").GetString()!,
                    root.GetProperty("seq").GetInt32(), root.GetProperty("metric").GetString()!, root.GetProperty("value").GetDouble(),
                    root.GetProperty("unit").GetString()!));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{source}: output line {number}: not a bench result ({e.Message}): {line}");
            }
        }
        return results;
    }
}

/// <summary>Parsed options plus the result sink shared by every workload.</summary>
public sealed class BenchContext
{
    private readonly Dictionary<string, string> _options;
    private readonly List<BenchResult> _results = [];

    public BenchContext(string workload, Dictionary<string, string> options, bool json, int defaultSeq)
    {
        Workload = workload;
        _options = options;
        Json = json;
        Preset = Option("preset", "qwen2.5-0.5b-shape");
        Seq = int.Parse(Option("seq", defaultSeq.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        Runs = int.Parse(Option("runs", "5"), CultureInfo.InvariantCulture);
    }

    public string Workload { get; }

    public bool Json { get; }

    /// <summary>Model preset the shapes come from (--preset).</summary>
    public string Preset { get; }

    /// <summary>Sequence length / rows per batch / prompt tokens (--seq; the default is the workload's).</summary>
    public int Seq { get; }

    /// <summary>Timed repetitions per measurement after the warm-up (--runs).</summary>
    public int Runs { get; }

    public IReadOnlyList<BenchResult> Results => _results;

    /// <summary>A workload-specific option (--name value), or <paramref name="fallback"/>.</summary>
    public string Option(string name, string fallback) => _options.TryGetValue(name, out string? value) ? value : fallback;

    public void Report(string metric, double value, string unit)
    {
        var result = new BenchResult(Workload, Preset, Seq, metric, value, unit);
        _results.Add(result);
        if (Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["workload"] = result.Workload,
                ["preset"] = result.Preset,
                ["seq"] = result.Seq,
                ["metric"] = result.Metric,
                ["value"] = Math.Round(result.Value, 3),
                ["unit"] = result.Unit,
            }));
        }
        else
        {
            Console.WriteLine($"{result.Metric,-44} {result.Value,12:F2} {result.Unit}");
        }
    }

    /// <summary>Median seconds of <see cref="Runs"/> timed calls after one untimed warm-up call.</summary>
    public double MedianSeconds(Action action) => MedianSeconds(() =>
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    });

    /// <summary>
    /// Median of the seconds <paramref name="timedRun"/> returns over <see cref="Runs"/> calls after one warm-up call,
    /// for runs that time only part of what they do (decode excludes its prefill).
    /// </summary>
    public double MedianSeconds(Func<double> timedRun)
    {
        timedRun();
        var times = new double[Math.Max(1, Runs)];
        for (int i = 0; i < times.Length; i++) times[i] = timedRun();
        Array.Sort(times);
        return times.Length % 2 == 1 ? times[times.Length / 2] : (times[times.Length / 2 - 1] + times[times.Length / 2]) / 2;
    }

    /// <summary>
    /// Restarts the peak-RSS count (Linux: writing 5 to /proc/self/clear_refs resets VmHWM), so one-off set-up such
    /// as generating a model folder does not stand in for the workload's own peak.
    /// </summary>
    public static void ResetPeakRss()
    {
        const string path = "/proc/self/clear_refs";
        if (File.Exists(path)) File.WriteAllText(path, "5");
    }

    /// <summary>Peak resident set size of this process in MiB (VmHWM from /proc/self/status), or NaN off Linux.</summary>
    public static double PeakRssMiB() => SharpTune.FineTuning.Memory.SystemMemory.PeakResidentBytes() is { } bytes ? bytes / (1024.0 * 1024.0) : double.NaN;
}
