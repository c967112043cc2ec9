using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Bench;

/// <summary>Repository paths and the generated benchmark model folders under bench/.models/.</summary>
public static partial class BenchModels
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Fixtures(params string[] parts) => Path.Combine([RepoRoot, "tests", "fixtures", .. parts]);

    /// <summary>
    /// The model folder of <paramref name="presetName"/>, written once with <see cref="ModelInitializer"/> (seed 0,
    /// the Qwen2.5-Instruct tokenizer, or tests/fixtures/tokenizers/chatglm3-uni for a ChatGLM preset; bf16 weights, or float32 with the same values when <paramref name="dtype"/>
    /// is "float32") and reused while its config.json and model.safetensors exist.
    /// </summary>
    public static string Ensure(string presetName, bool quiet, string dtype = "bfloat16")
    {
        var preset = ModelPreset.Get(presetName);
        var stored = dtype switch
        {
            "bfloat16" => DType.BF16,
            "float32" => DType.F32,
            _ => throw new ArgumentException($"--dtype must be bfloat16 or float32, not '{dtype}'"),
        };
        string folder = Path.Combine(RepoRoot, "bench", ".models", stored == DType.F32 ? preset.Name + "-float32" : preset.Name);
        if (File.Exists(Path.Combine(folder, "config.json")) && File.Exists(Path.Combine(folder, "model.safetensors")))
            return folder;
        if (!quiet) Console.WriteLine($"# generating {preset.Name} into {folder} (once)");
        // A ChatGLM preset takes a SentencePiece tokenizer.model folder, the Qwen presets Qwen's tokenizer.json.
        string tokenizer = Fixtures("tokenizers", preset.Architecture == Architecture.ChatGlm ? "chatglm3-uni" : "qwen2.5-instruct");
        ModelInitializer.Create(preset, tokenizer, folder, seed: 0, stored);
        BenchContext.ResetPeakRss();
        return folder;
    }

    /// <summary>Parameters of the decoder layers' projection matrices (everything but embedding, lm_head and the norms).</summary>
    public static long LayerMatrixParams(ModelConfig c) =>
        (long)c.NumLayers * ((long)c.HiddenSize * c.QueryWidth * 2 + (long)c.HiddenSize * c.KvWidth * 2 + 3L * c.HiddenSize * c.IntermediateSize);

    /// <summary>The `sharptune` CLI built next to this bench, in the same configuration.</summary>
    public static string SharpTuneCli()
    {
        // This bench runs from bench/SharpTune.Bench/bin/CONFIGURATION/TFM/; the CLI is built to the same place under its project.
        string benchProject = Path.Combine(RepoRoot, "bench", "SharpTune.Bench");
        string output = Path.GetRelativePath(benchProject, AppContext.BaseDirectory);
        string cli = Path.Combine(RepoRoot, "src", "SharpTune.Cli", output, OperatingSystem.IsWindows() ? "SharpTune.Cli.exe" : "SharpTune.Cli");
        if (!File.Exists(cli)) throw new FileNotFoundException($"the sharptune CLI is not built at {cli}: build the solution (dotnet build SharpTune.sln -c Release) first");
        return cli;
    }

    /// <summary>
    /// Runs `sharptune train CONFIG` (<see cref="SharpTuneCli"/>) to its end: its wall-clock seconds and the peak
    /// resident memory it logs at its end, in MB.
    /// </summary>
    public static (double WallSeconds, double PeakMegabytes) RunSharpTuneTrain(string config)
    {
        string cli = SharpTuneCli();
        var start = new ProcessStartInfo(cli) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("train");
        start.ArgumentList.Add(config);
        Console.Error.WriteLine($"# sharptune train {config}");
        long started = Stopwatch.GetTimestamp();
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {cli}");
        var stdout = child.StandardOutput.ReadToEndAsync();
        string stderr = child.StandardError.ReadToEnd();
        child.WaitForExit();
        double wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _ = stdout.Result;
        var peak = PeakLine().Match(stderr);
        if (child.ExitCode != 0 || !peak.Success)
            throw new InvalidOperationException($"sharptune train {config} exited with {child.ExitCode} without a peak memory line: {stderr.Trim()}");
        return (wall, double.Parse(peak.Groups[1].Value, CultureInfo.InvariantCulture) * (peak.Groups[2].Value == "GB" ? 1000 : 1));
    }

    [GeneratedRegex(@"peak resident memory: ([\d.]+) (MB|GB)")]
    private static partial Regex PeakLine();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpTune.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException($"no SharpTune.sln above {AppContext.BaseDirectory}");
    }
}
