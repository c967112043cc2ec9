using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SharpTune.Engine;

namespace SharpTune.Bench;

/// <summary>
/// The speed report: the machine's GEMM peak, LoRA training steps, prefill and decode, each run in a child process
/// of this bench (so each peak RSS is that workload's own), printed as one table beside PyTorch's figures for the
/// same workloads on the same kind of machine, with the ratio. --runs is passed on to every child.
/// </summary>
public sealed class ReportWorkload : IWorkload
{
    /// <param name="Args">The child's command line after the workload name.</param>
    /// <param name="PyTorchTokensPerS">PyTorch's tokens/s for the same workload, or NaN where none was measured.</param>
    /// <param name="PyTorchRssMiB">PyTorch's peak RSS, or NaN.</param>
    private sealed record Row(string Label, string Workload, string[] Args, string Metric, double PyTorchTokensPerS, double PyTorchRssMiB);

    // PyTorch 1.13 (Debian) + transformers 4.40 + PEFT 0.11, fp32, 2 threads, OpenBLAS, random Qwen2.5-0.5B-shaped
    // weights, LoRA r16/α32 on all seven projections, batch 1: the figures measured on this machine type and quoted
    // in the speed issue (issue 5). README "Benchmarks" gives the script to measure them again. The bf16 row is
    // set against the same fp32 figure, as issue 5 states its bf16 target (4× PyTorch's fp32 step).
    private static readonly Row[] s_rows =
    [
        new("LoRA step, 0.5B, seq 256", "train", ["--seq", "256"], "train_tokens_per_s", 41, 4.8 * 1024),
        new("LoRA step, 0.5B, seq 256, bf16", "train", ["--seq", "256", "--bf16", "true"], "train_tokens_per_s", 41, 4.8 * 1024),
        new("LoRA step, 0.5B, seq 512", "train", ["--seq", "512"], "train_tokens_per_s", 41, 6.5 * 1024),
        new("LoRA step, 0.5B, seq 512, checkpointing", "train", ["--seq", "512", "--gradient-checkpointing"], "train_tokens_per_s", 37.5, 3.9 * 1024),
        new("LoRA step, 1.8B, seq 512, checkpointing", "train", ["--preset", "qwen1.5-1.8b-shape", "--seq", "512", "--gradient-checkpointing"], "train_tokens_per_s", double.NaN, double.NaN),
        new("prefill, 0.5B, 512 tokens", "prefill", ["--seq", "512"], "prefill_tokens_per_s", 126, double.NaN),
        new("decode, 0.5B bf16 weights", "decode", [], "decode_tokens_per_s", double.NaN, double.NaN),
        new("decode, 0.5B float32 weights", "decode", ["--dtype", "float32"], "decode_tokens_per_s", 6.6, double.NaN),
    ];

    public string Name => "report";

    public string Description => "the speed table: GEMM peak, LoRA steps, prefill, decode, each in its own process, against PyTorch";

    public int DefaultSeq => 0;

    public void Run(BenchContext context)
    {
        string runs = context.Runs.ToString(CultureInfo.InvariantCulture);
        // Models are generated here, before any child runs: a child that generated its model would report the
        // generation's peak RSS (this VM ignores the reset of the high-water mark), not its workload's.
        BenchModels.Ensure("qwen2.5-0.5b-shape", context.Json);
        BenchModels.Ensure("qwen2.5-0.5b-shape", context.Json, "float32");
        BenchModels.Ensure("qwen1.5-1.8b-shape", context.Json);
        var gemm = RunChild("gemm", ["--variants", "NN,NT,W-BF16,BF16", "--shapes", "gate_up_proj,down_proj", "--seq", "512", "--runs", runs]);
        // The fp32 peak (every kernel's fp32 products, bf16 weights widened included) and, apart, the bf16 GEMM's:
        // a bf16 step is measured against the bf16 peak.
        static bool IsBf16Gemm(BenchResult r) => r.Metric.Contains(".BF16.", StringComparison.Ordinal);
        var products = gemm.Where(r => r.Metric.EndsWith("]", StringComparison.Ordinal)).ToList();
        var peak = products.Where(r => !IsBf16Gemm(r)).MaxBy(r => r.Value)
            ?? throw new InvalidOperationException("the gemm workload reported no GFLOP/s figure");
        var bf16Peak = products.Where(IsBf16Gemm).MaxBy(r => r.Value);
        context.Report("gemm_peak", peak.Value, $"GFLOP/s ({peak.Metric})");
        if (bf16Peak is not null) context.Report("gemm_peak_bf16", bf16Peak.Value, $"GFLOP/s ({bf16Peak.Metric})");

        var table = new List<string[]>
        {
            new[] { "workload", "tokens/s", "GFLOP/s", "of GEMM peak", "peak RSS", "PyTorch", "ratio" },
        };
        foreach (var row in s_rows)
        {
            if (row.Args.Contains("--bf16") && Bf16ComputeMatrix.AvailableKernel is null)
            {
                table.Add([row.Label, $"— ({Bf16ComputeMatrix.Unavailable})", "—", "—", "—", "—", "—"]);
                continue;
            }
            var results = RunChild(row.Workload, [.. row.Args, "--runs", runs]);
            double Value(string metric) => results.FirstOrDefault(r => r.Metric == metric)?.Value ?? double.NaN;
            double tokens = Value(row.Metric), rss = Value("peak_rss");
            double gflops = row.Workload switch
            {
                "train" => Value("train_gflops"),
                "prefill" => Value("prefill_gflops"),
                _ => double.NaN,
            };
            string extra = row.Workload == "decode"
                ? $" ({Value("decode_weight_bandwidth"):F1} GB/s of {Value("decode_weight_bytes_per_token"):F0} MB per token)"
                : "";
            context.Report(Slug(row.Label), tokens, "tokens/s" + extra);
            table.Add(
            [
                row.Label,
                $"{tokens:F1}{extra}",
                double.IsNaN(gflops) ? "—" : $"{gflops:F0}",
                double.IsNaN(gflops) ? "—" : $"{100 * gflops / (row.Args.Contains("--bf16") ? bf16Peak?.Value ?? double.NaN : peak.Value):F0}%",
                $"{rss / 1024:F2} GB",
                double.IsNaN(row.PyTorchTokensPerS) ? "—" : $"{row.PyTorchTokensPerS:G3} tokens/s" + (double.IsNaN(row.PyTorchRssMiB) ? "" : $", {row.PyTorchRssMiB / 1024:F1} GB"),
                double.IsNaN(row.PyTorchTokensPerS) ? "—" : $"{tokens / row.PyTorchTokensPerS:F2}×" + (double.IsNaN(row.PyTorchRssMiB) ? "" : $", RSS {rss / row.PyTorchRssMiB:F2}×"),
            ]);
        }
        if (!context.Json) PrintTable(table, peak, bf16Peak);
    }

    /// <summary>A label as a metric name: lower-case letters and digits joined by underscores.</summary>
    internal static string Slug(string label) =>
        new string(label.Select(ch => char.IsLetterOrDigit(ch) ? char.ToLowerInvariant(ch) : '_').ToArray()).Replace("__", "_").Trim('_');

    private static void PrintTable(List<string[]> rows, BenchResult peak, BenchResult? bf16Peak)
    {
        Console.WriteLine();
        Console.WriteLine($"GEMM peak measured here: {peak.Value:F0} GFLOP/s ({peak.Metric}, M=512)"
            + (bf16Peak is null ? "" : $"; bf16 GEMM peak {bf16Peak.Value:F0} GFLOP/s ({bf16Peak.Metric}), the bf16 row's reference"));
        int[] widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        foreach (var (row, index) in rows.Select((r, i) => (r, i)))
        {
            Console.WriteLine("| " + string.Join(" | ", row.Select((cell, i) => cell.PadRight(widths[i]))) + " |");
            if (index == 0) Console.WriteLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
        }
    }

    /// <summary>Runs this bench with one workload in a child process and reads its JSON lines.</summary>
    private static List<BenchResult> RunChild(string workload, string[] args)
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("the bench's own executable is unknown");
        var start = new ProcessStartInfo(process) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Under `dotnet SharpTune.Bench.dll` the host needs the assembly first; the apphost does not.
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
            start.ArgumentList.Add(typeof(ReportWorkload).Assembly.Location);
        start.ArgumentList.Add(workload);
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.ArgumentList.Add("--json");
        Console.Error.WriteLine($"# running {workload} {string.Join(' ', args)}");
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {process}");
        var error = child.StandardError.ReadToEndAsync();
        var results = new List<BenchResult>();
        string? line;
        while ((line = child.StandardOutput.ReadLine()) is not null)
        {
            if (!line.StartsWith('{')) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            results.Add(new BenchResult(root.GetProperty("workload").GetString()!, root.GetProperty("preset").GetString()!,
                root.GetProperty("seq").GetInt32(), root.GetProperty("metric").GetString()!, root.GetProperty("value").GetDouble(),
                root.GetProperty("unit").GetString()!));
        }
        child.WaitForExit();
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"bench {workload} {string.Join(' ', args)} failed ({child.ExitCode}): {error.Result.Trim()}");
        return results;
    }
}
