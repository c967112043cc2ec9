using System.Diagnostics;
using System.Globalization;
using SharpTune.Bench;

namespace SharpTune.Tests.Bench;

/// <summary>A test that needs a python3 (Debian's /usr/bin/python3 or one on PATH); skipped with the reason otherwise.</summary>
public sealed class Python3FactAttribute : FactAttribute
{
    public static string? Python3 { get; } = new[] { "/usr/bin/python3" }
        .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Select(dir => Path.Combine(dir, "python3")))
        .FirstOrDefault(File.Exists);

    public Python3FactAttribute()
    {
        if (Python3 is null) Skip = "checking bench/pytorch/workloads.py needs python3 (none at /usr/bin/python3 or on PATH)";
    }
}

/// <summary>
/// The bench's same-run PyTorch comparison without PyTorch: the Python side's syntax, and the report's reading and
/// arithmetic on output recorded from real runs (the bench's own --json lines with the pytorch.* figures that
/// bench/pytorch/workloads.py printed, and a gemm run's lines).
/// </summary>
public sealed class PyTorchComparisonTests
{
    // `SharpTune.Bench train --preset small --seq 64 --runs 2 --with-pytorch true --json` on the 2-core development VM
    // under load (2026-12-05); the "# PyTorch ..." line is the one the bench writes to stderr, kept to show that
    // comment lines are passed over.
    private const string RecordedTrain = """
        # PyTorch 1.13.0a0: /usr/bin/python3 bench/pytorch/workloads.py train --model bench/.models/small --threads 2 --runs 2 --seq 64 --batch 1 --lora-rank 16
        {"workload":"train","preset":"small","seq":64,"metric":"pytorch.train_tokens_per_s","value":7.24,"unit":"tokens/s"}
        {"workload":"train","preset":"small","seq":64,"metric":"pytorch.train_seconds_per_step","value":8.84,"unit":"s"}
        {"workload":"train","preset":"small","seq":64,"metric":"pytorch.peak_rss","value":571.625,"unit":"MiB"}
        {"workload":"train","preset":"small","seq":64,"metric":"train_tokens_per_s","value":41.505,"unit":"tokens/s"}
        {"workload":"train","preset":"small","seq":64,"metric":"train_seconds_per_step","value":1.542,"unit":"s"}
        {"workload":"train","preset":"small","seq":64,"metric":"train_gflops","value":7.88,"unit":"GFLOP/s"}
        {"workload":"train","preset":"small","seq":64,"metric":"optimizer_state","value":5.5,"unit":"MiB"}
        {"workload":"train","preset":"small","seq":64,"metric":"peak_rss","value":632.855,"unit":"MiB"}
        """;

    // `SharpTune.Bench gemm --variants NN,NT,W-BF16,BF16 --shapes gate_up_proj,down_proj --seq 512 --runs 1 --json`,
    // the same sitting, a few of its lines.
    private const string RecordedGemm = """
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"managed-avx512.NT.down_proj[896x4864]","value":28.983,"unit":"GFLOP/s"}
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"onednn.NN.gate_up_proj[4864x896]","value":34.925,"unit":"GFLOP/s"}
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"onednn.BF16.gate_up_proj[4864x896]","value":45.825,"unit":"GFLOP/s"}
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"onednn.BF16.down_proj[896x4864]","value":59.266,"unit":"GFLOP/s"}
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"openblas.NN.gate_up_proj[4864x896]","value":29.041,"unit":"GFLOP/s"}
        {"workload":"gemm","preset":"qwen2.5-0.5b-shape","seq":512,"metric":"peak_rss","value":144.633,"unit":"MiB"}
        """;

    private static List<BenchResult> Read(string text) => BenchResult.ReadJsonLines(new StringReader(text), "recorded");

    private static double Number(string cell, string prefix = "") =>
        double.Parse(cell[prefix.Length..].Split(' ', '×', '%', ',')[0], CultureInfo.InvariantCulture);

    [Python3Fact]
    public void ThePyTorchSideCompiles()
    {
        string script = Path.Combine(TestPaths.RepoRoot, "bench", "pytorch", "workloads.py");
        string compiled = Path.Combine(Path.GetTempPath(), $"workloads-{Guid.NewGuid():N}.pyc");
        var start = new ProcessStartInfo(Python3FactAttribute.Python3!) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)", script, compiled })
            start.ArgumentList.Add(arg);
        try
        {
            using var python = Process.Start(start)!;
            string error = python.StandardError.ReadToEnd();
            python.WaitForExit();
            Assert.True(python.ExitCode == 0, $"py_compile {script}: {error}");
        }
        finally
        {
            File.Delete(compiled);
        }
    }

    [Fact]
    public void RecordedOutputIsReadPassingOverCommentLines()
    {
        var results = Read(RecordedTrain);
        Assert.Equal(8, results.Count);
        Assert.Equal(("pytorch.train_tokens_per_s", 7.24, "tokens/s"), (results[0].Metric, results[0].Value, results[0].Unit));
        Assert.Equal(("peak_rss", 632.855), (results[^1].Metric, results[^1].Value));
    }

    [Fact]
    public void AMalformedLineIsAnErrorNamingItsSourceAndLine()
    {
        var e = Assert.Throws<InvalidDataException>(() => Read("# comment\n{\"workload\":\"train\",\"metric\":\"x\"}\n"));
        Assert.Contains("recorded: output line 2", e.Message);
    }

    [Fact]
    public void TheFp32PeakLeavesOutTheBf16GemmWhichIsItsOwnPeak()
    {
        var (fp32, bf16) = ReportWorkload.Peaks(Read(RecordedGemm));
        Assert.Equal(("onednn.NN.gate_up_proj[4864x896]", 34.925), (fp32.Metric, fp32.Value));
        Assert.Equal(("onednn.BF16.down_proj[896x4864]", 59.266), (bf16!.Metric, bf16.Value));
    }

    [Fact]
    public void ARowWithPyTorchPutsBothSidesAgainstTheSamePeakAndDividesOursByTheirs()
    {
        var results = Read(RecordedTrain);
        var row = new ReportWorkload.Row("LoRA step, small, seq 64", "train", ["--seq", "64"], "train_tokens_per_s", "train_gflops");
        string[] cells = ReportWorkload.TableRow(row, results, peak: 34.925, bf16Peak: 59.266, withPyTorch: true);

        Assert.Equal(ReportWorkload.Header(withPyTorch: true).Length, cells.Length);
        Assert.Equal(41.5, Number(cells[1]), 1);
        Assert.Equal(7.88, Number(cells[2]), 0);
        Assert.Equal(100 * 7.88 / 34.925, Number(cells[3]), 0);
        Assert.Equal(632.855 / 1024, Number(cells[4]), 2);
        Assert.Equal(7.24, Number(cells[5]), 1);
        Assert.Equal(571.625 / 1024, Number(cells[5].Split(", ")[1]), 2);
        // PyTorch does the same flops in its own time: its fraction scales with its tokens/s.
        Assert.Equal(100 * 7.88 * (7.24 / 41.505) / 34.925, Number(cells[6]), 0);
        Assert.Equal(41.505 / 7.24, Number(cells[7]), 2);
        Assert.Equal(632.855 / 571.625, Number(cells[7].Split(", ")[1], "RSS "), 2);
    }

    [Fact]
    public void ABf16RowIsMeasuredAgainstTheBf16Peak()
    {
        var row = new ReportWorkload.Row("LoRA step, small, seq 64, bf16", "train", ["--seq", "64", "--bf16", "true"], "train_tokens_per_s", "train_gflops");
        string[] cells = ReportWorkload.TableRow(row, Read(RecordedTrain), peak: 34.925, bf16Peak: 59.266, withPyTorch: false);
        Assert.Equal(ReportWorkload.Header(withPyTorch: false).Length, cells.Length);
        Assert.Equal(100 * 7.88 / 59.266, Number(cells[3]), 0);
    }

    [Fact]
    public void ARowWhoseChildReportedNoPyTorchFigureNamesTheMissingMetric()
    {
        var ours = Read(RecordedTrain).Where(r => !r.Metric.StartsWith("pytorch.", StringComparison.Ordinal)).ToList();
        var row = new ReportWorkload.Row("LoRA step, small, seq 64", "train", ["--seq", "64"], "train_tokens_per_s", "train_gflops");
        var e = Assert.Throws<InvalidDataException>(() => ReportWorkload.TableRow(row, ours, 34.925, 59.266, withPyTorch: true));
        Assert.Contains("pytorch.train_tokens_per_s", e.Message);
    }

    [Fact]
    public void ARowWithoutAPyTorchCounterpartSaysWhyInItsPyTorchCellsAndNeedsNoPyTorchFigure()
    {
        var ours = Read(RecordedTrain).Where(r => !r.Metric.StartsWith("pytorch.", StringComparison.Ordinal)).ToList();
        var row = new ReportWorkload.Row("QLoRA-NF4 step, small, seq 64", "train", ["--seq", "64", "--quantization-bit", "4"], "train_tokens_per_s",
            "train_gflops", PyTorchAbsent: "no bitsandbytes");
        string[] cells = ReportWorkload.TableRow(row, ours, peak: 34.925, bf16Peak: 59.266, withPyTorch: true);
        Assert.Equal(ReportWorkload.Header(withPyTorch: true).Length, cells.Length);
        Assert.Equal(41.5, Number(cells[1]), 1);
        Assert.Equal("— (no bitsandbytes)", cells[5]);
        Assert.Equal(["—", "—"], cells[6..]);
    }
}
