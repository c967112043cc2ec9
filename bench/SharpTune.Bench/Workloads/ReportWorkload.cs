using System.Diagnostics;
using System.Globalization;
using SharpTune.Engine;

namespace SharpTune.Bench;

/// <summary>
/// The speed report: the machine's GEMM peaks, LoRA training steps, prefill, decode and LoRA SFT on real data
/// (<see cref="SftWorkload"/>, --sft-steps steps), each run in a child process of this bench (so each peak RSS is that
/// workload's own), printed as one table under a header naming the CPU and the peaks. --with-pytorch true passes the
/// same option to every child, which first runs its workload in plain PyTorch (<see cref="PyTorchSide"/>), and adds
/// PyTorch's figures and the ratio to each row. --runs is passed on to every child; --only TEXT keeps the rows whose
/// label contains TEXT (the GEMM peaks are always measured).
/// </summary>
public sealed class ReportWorkload : IWorkload
{
    /// <param name="Args">The child's command line after the workload name.</param>
    /// <param name="Metric">The child's tokens/s; with --with-pytorch it reports PyTorch's as pytorch.METRIC.</param>
    /// <param name="GflopsMetric">The child's achieved GFLOP/s, or null where it reports none.</param>
    /// <param name="RssMetric">The child's figure for the workload's peak RSS in MiB.</param>
    /// <param name="PyTorchAbsent">
    /// Why plain PyTorch has no counterpart of this row (its PyTorch cells then say so), or null where it has one.
    /// </param>
    public sealed record Row(string Label, string Workload, string[] Args, string Metric, string? GflopsMetric, string RssMetric = "peak_rss",
        string? PyTorchAbsent = null)
    {
        public bool Bf16 => Args.Contains("--bf16");
    }

    /// <summary>QLoRA's rows have no PyTorch side: its 4-bit layers are bitsandbytes', which Debian does not package.</summary>
    private const string NoBitsandbytes = "no bitsandbytes";

    private static Row[] Rows(string sftSteps) =>
    [
        new("LoRA step, 0.5B, seq 256", "train", ["--seq", "256"], "train_tokens_per_s", "train_gflops"),
        new("LoRA step, 0.5B, seq 256, bf16", "train", ["--seq", "256", "--bf16", "true"], "train_tokens_per_s", "train_gflops"),
        new("LoRA step, 0.5B, seq 512", "train", ["--seq", "512"], "train_tokens_per_s", "train_gflops"),
        new("LoRA step, 0.5B, seq 512, checkpointing", "train", ["--seq", "512", "--gradient-checkpointing"], "train_tokens_per_s", "train_gflops"),
        new("LoRA step, 1.8B, seq 512, checkpointing", "train", ["--preset", "qwen1.5-1.8b-shape", "--seq", "512", "--gradient-checkpointing"], "train_tokens_per_s", "train_gflops"),
        new("QLoRA-NF4 step, 1.8B, seq 512, checkpointing", "train",
            ["--preset", "qwen1.5-1.8b-shape", "--seq", "512", "--gradient-checkpointing", "--quantization-bit", "4"], "train_tokens_per_s", "train_gflops",
            PyTorchAbsent: NoBitsandbytes),
        new("QLoRA-NF4 step, 1.8B, seq 512, checkpointing, bf16", "train",
            ["--preset", "qwen1.5-1.8b-shape", "--seq", "512", "--gradient-checkpointing", "--quantization-bit", "4", "--bf16", "true"],
            "train_tokens_per_s", "train_gflops", PyTorchAbsent: NoBitsandbytes),
        new("prefill, 0.5B, 512 tokens", "prefill", ["--seq", "512"], "prefill_tokens_per_s", "prefill_gflops"),
        new("decode, 0.5B bf16 weights", "decode", [], "decode_tokens_per_s", null),
        new("decode, 0.5B float32 weights", "decode", ["--dtype", "float32"], "decode_tokens_per_s", null),
        new($"sharptune train, alpaca_zh_demo, 0.5B, batch 4, cutoff 512, {sftSteps} steps", "sft", ["--steps", sftSteps], "sft_tokens_per_s", null, "sft_train_peak_rss"),
        new($"sharptune train, alpaca_zh_demo, 0.5B, batch 4, cutoff 512, {sftSteps} steps, bf16", "sft", ["--steps", sftSteps, "--bf16", "true"], "sft_tokens_per_s", null, "sft_train_peak_rss"),
    ];

    public string Name => "report";

    public string Description => "the speed table: GEMM peaks, LoRA steps, prefill, decode, sharptune train on real data, each in its own process (--with-pytorch true: against plain PyTorch in the same sitting)";

    public int DefaultSeq => 0;

    public void Run(BenchContext context)
    {
        string runs = context.Runs.ToString(CultureInfo.InvariantCulture);
        bool withPyTorch = PyTorchSide.Requested(context);
        string[] pyTorchArgs = withPyTorch ? ["--with-pytorch", "true", .. context.Option("python", "") is { Length: > 0 } python ? ["--python", python] : Array.Empty<string>()] : [];
        // Found before anything runs, so that a machine without torch fails at once, not after an hour of rows.
        var torch = withPyTorch ? PyTorchSide.FindPython(context.Option("python", "")) : null;
        // Models are generated here, before any child runs: a child that generated its model would report the
        // generation's peak RSS (this VM ignores the reset of the high-water mark), not its workload's.
        BenchModels.Ensure("qwen2.5-0.5b-shape", context.Json);
        BenchModels.Ensure("qwen2.5-0.5b-shape", context.Json, "float32");
        BenchModels.Ensure("qwen1.5-1.8b-shape", context.Json);
        var gemm = RunChild("gemm", ["--variants", "NN,NT,W-BF16,BF16", "--shapes", "gate_up_proj,down_proj", "--seq", "512", "--runs", runs]);
        var (peak, bf16Peak) = Peaks(gemm);
        context.Report("gemm_peak", peak.Value, $"GFLOP/s ({peak.Metric})");
        if (bf16Peak is not null) context.Report("gemm_peak_bf16", bf16Peak.Value, $"GFLOP/s ({bf16Peak.Metric})");

        var table = new List<string[]> { Header(withPyTorch) };
        string only = context.Option("only", "");
        foreach (var row in Rows(context.Option("sft-steps", "20")).Where(r => r.Label.Contains(only, StringComparison.OrdinalIgnoreCase)))
        {
            if (row.Bf16 && Bf16ComputeMatrix.AvailableKernel is null)
            {
                table.Add([row.Label, $"— ({Bf16ComputeMatrix.Unavailable})", .. Enumerable.Repeat("—", Header(withPyTorch).Length - 2)]);
                continue;
            }
            var results = RunChild(row.Workload, [.. row.Args, "--runs", runs, .. row.PyTorchAbsent is null ? pyTorchArgs : []]);
            context.Report(Slug(row.Label), Value(results, row.Metric), "tokens/s");
            if (withPyTorch && row.PyTorchAbsent is null) context.Report(Slug(row.Label) + ".pytorch", Value(results, "pytorch." + row.Metric), "tokens/s");
            table.Add(TableRow(row, results, peak.Value, bf16Peak?.Value, withPyTorch));
        }
        if (context.Json) return;
        Console.WriteLine();
        Console.WriteLine(MachineLine());
        Console.WriteLine($"GEMM peaks measured here (M=512): fp32 {peak.Value:F0} GFLOP/s ({peak.Metric})"
            + (bf16Peak is null ? "; no bf16 GEMM" : $", bf16 {bf16Peak.Value:F0} GFLOP/s ({bf16Peak.Metric}), the bf16 rows' reference"));
        if (torch is not null)
            Console.WriteLine($"PyTorch {torch.TorchVersion} ({torch.Path}), bench/pytorch/workloads.py, {EngineThreads.Count} threads, same sitting; bf16 rows under torch.autocast, decode/prefill in the weights' dtype");
        PrintTable(table);
    }

    /// <summary>
    /// The fp32 peak (every kernel's fp32 products, bf16 weights widened included) and, apart, the bf16 GEMM's (null
    /// where there is none): a bf16 step is measured against the bf16 peak.
    /// </summary>
    public static (BenchResult Fp32, BenchResult? Bf16) Peaks(IReadOnlyList<BenchResult> gemm)
    {
        static bool IsBf16Gemm(BenchResult r) => r.Metric.Contains(".BF16.", StringComparison.Ordinal);
        var products = gemm.Where(r => r.Metric.EndsWith(']')).ToList();
        var peak = products.Where(r => !IsBf16Gemm(r)).MaxBy(r => r.Value)
            ?? throw new InvalidOperationException("the gemm workload reported no GFLOP/s figure");
        return (peak, products.Where(IsBf16Gemm).MaxBy(r => r.Value));
    }

    public static string[] Header(bool withPyTorch) => withPyTorch
        ? ["workload", "tokens/s", "GFLOP/s", "of GEMM peak", "peak RSS", "PyTorch", "PyTorch of GEMM peak", "ratio"]
        : ["workload", "tokens/s", "GFLOP/s", "of GEMM peak", "peak RSS"];

    /// <summary>
    /// One row of the table from a child's results: its tokens/s, GFLOP/s and their fraction of the GEMM peak (the bf16
    /// peak for a bf16 row), its peak RSS; with PyTorch, PyTorch's tokens/s and peak RSS, PyTorch's fraction of the same
    /// peak (the same flops in its time) and the ratios.
    /// </summary>
    public static string[] TableRow(Row row, IReadOnlyList<BenchResult> results, double peak, double? bf16Peak, bool withPyTorch)
    {
        double tokens = Value(results, row.Metric), rss = Value(results, row.RssMetric);
        double gflops = row.GflopsMetric is null ? double.NaN : Value(results, row.GflopsMetric);
        double reference = row.Bf16 ? bf16Peak ?? double.NaN : peak;
        string extra = row.Workload == "decode"
            ? $" ({Value(results, "decode_weight_bandwidth"):F1} GB/s of {Value(results, "decode_weight_bytes_per_token"):F0} MB per token)"
            : "";
        string Fraction(double achieved) => double.IsNaN(achieved) || double.IsNaN(reference) ? "—" : $"{100 * achieved / reference:F0}%";
        string[] cells = [row.Label, $"{tokens:F1}{extra}", double.IsNaN(gflops) ? "—" : $"{gflops:F0}", Fraction(gflops), $"{rss / 1024:F2} GiB"];
        if (!withPyTorch) return cells;
        if (row.PyTorchAbsent is { } absent) return [.. cells, $"— ({absent})", "—", "—"];
        double torchTokens = Value(results, "pytorch." + row.Metric), torchRss = Value(results, "pytorch.peak_rss");
        return
        [
            .. cells,
            $"{torchTokens:F1} tokens/s, {torchRss / 1024:F2} GiB",
            Fraction(gflops * torchTokens / tokens),
            $"{tokens / torchTokens:F2}×, RSS {rss / torchRss:F2}×",
        ];
    }

    /// <summary>The CPU as /proc/cpuinfo names it (a VM's model name alone, "AMD EPYC", does not say which), its threads and bf16 support.</summary>
    public static string MachineLine() =>
        $"CPU: {CpuInfo.ModelName ?? "unknown model"} (family {CpuInfo.Family ?? "?"}, model {CpuInfo.ModelNumber ?? "?"}), "
        + $"{Environment.ProcessorCount} logical processors, {EngineThreads.Count} engine threads; "
        + $"AVX-512 {(CpuInfo.Flags.Contains("avx512f") ? "yes" : "no")}, AVX512-BF16 {(CpuInfo.Flags.Contains("avx512_bf16") ? "yes" : "no")}, AMX-BF16 {(CpuInfo.Flags.Contains("amx_bf16") ? "yes" : "no")}";

    private static double Value(IReadOnlyList<BenchResult> results, string metric) =>
        results.FirstOrDefault(r => r.Metric == metric)?.Value ?? throw new InvalidDataException($"the {results.FirstOrDefault()?.Workload ?? "child"} workload reported no {metric}");

    /// <summary>A label as a metric name: lower-case letters and digits joined by underscores.</summary>
    internal static string Slug(string label) =>
        new string(label.Select(ch => char.IsLetterOrDigit(ch) ? char.ToLowerInvariant(ch) : '_').ToArray()).Replace("__", "_").Trim('_');

    private static void PrintTable(List<string[]> rows)
    {
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
        var results = BenchResult.ReadJsonLines(child.StandardOutput, $"bench {workload}");
        child.WaitForExit();
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"bench {workload} {string.Join(' ', args)} failed ({child.ExitCode}): {error.Result.Trim()}");
        return results;
    }
}
