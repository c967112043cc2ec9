using System.Diagnostics;
using System.Globalization;
using SharpTune.Engine;

namespace SharpTune.Bench;

/// <summary>
/// The plain-PyTorch implementation of the workloads (bench/pytorch/workloads.py), run in the same sitting by a
/// workload given --with-pytorch true: a Python with torch is found once (--python PATH, else Debian's
/// /usr/bin/python3, where apt's python3-torch installs, else the python3 on PATH), and each run's figures are
/// reported as pytorch.METRIC beside the workload's own. It runs before the workload loads its model, so the two never
/// hold memory or cores at the same time.
/// </summary>
public static class PyTorchSide
{
    public static string Script => Path.Combine(BenchModels.RepoRoot, "bench", "pytorch", "workloads.py");

    /// <summary>Whether the workload was asked to compare (--with-pytorch true).</summary>
    public static bool Requested(BenchContext context) => bool.Parse(context.Option("with-pytorch", "false"));

    /// <summary>
    /// Runs <c>workloads.py WORKLOAD --model FOLDER ARGS</c> with this bench's engine thread count and --runs, reports
    /// every figure it prints as pytorch.METRIC and returns them with the process's wall-clock seconds (start-up,
    /// <c>import torch</c> and loading included).
    /// </summary>
    public static (List<BenchResult> Results, double WallSeconds) Run(BenchContext context, string workload, string folder, params string[] args)
    {
        var python = FindPython(context.Option("python", ""));
        var start = new ProcessStartInfo(python.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] all = [Script, workload, "--model", folder, "--threads", EngineThreads.Count.ToString(CultureInfo.InvariantCulture),
            "--runs", context.Runs.ToString(CultureInfo.InvariantCulture), .. args];
        foreach (string arg in all) start.ArgumentList.Add(arg);
        string commandLine = $"{python.Path} {string.Join(' ', all)}";
        Console.Error.WriteLine($"# PyTorch {python.TorchVersion}: {commandLine}");
        long started = Stopwatch.GetTimestamp();
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {python.Path}");
        var error = child.StandardError.ReadToEndAsync();
        var results = BenchResult.ReadJsonLines(child.StandardOutput, commandLine);
        child.WaitForExit();
        double wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"{commandLine} failed ({child.ExitCode}): {error.Result.Trim()}");
        foreach (var result in results) context.Report("pytorch." + result.Metric, result.Value, result.Unit);
        return (results, wall);
    }

    /// <summary>A Python interpreter that imports torch, and torch's version.</summary>
    public sealed record Python(string Path, string TorchVersion);

    private static Python? s_python;

    /// <summary>
    /// <paramref name="requested"/> (--python) when given, else the first of /usr/bin/python3 and the python3 on PATH
    /// that imports torch; an error naming every interpreter tried and why it failed when none does.
    /// </summary>
    public static Python FindPython(string requested)
    {
        if (s_python is not null) return s_python;
        string[] candidates = requested.Length > 0
            ? [requested]
            : ["/usr/bin/python3", .. (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
                .Select(dir => System.IO.Path.Combine(dir, "python3")).Where(File.Exists).Take(1)];
        var failures = new List<string>();
        foreach (string candidate in candidates.Distinct())
        {
            if (!File.Exists(candidate))
            {
                failures.Add($"{candidate} (not there)");
                continue;
            }
            var start = new ProcessStartInfo(candidate) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string arg in new[] { "-c", "import torch; print(torch.__version__)" }) start.ArgumentList.Add(arg);
            using var probe = Process.Start(start)!;
            var error = probe.StandardError.ReadToEndAsync();
            string version = probe.StandardOutput.ReadToEnd().Trim();
            probe.WaitForExit();
            if (probe.ExitCode == 0) return s_python = new Python(candidate, version);
            failures.Add($"{candidate} ({error.Result.Trim().Split('\n').Last()})");
        }
        throw new InvalidOperationException(
            $"--with-pytorch needs a Python that imports torch; tried {string.Join(", ", failures)}: install Debian's python3-torch (apt-get install python3-torch) or pass --python PATH");
    }
}
