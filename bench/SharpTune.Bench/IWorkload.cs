namespace SharpTune.Bench;

/// <summary>A benchmark selectable by name on the command line. Add one by implementing this and registering it in <see cref="Workloads.All"/>.</summary>
public interface IWorkload
{
    string Name { get; }

    string Description { get; }

    /// <summary>What --seq means when it is not given: rows per GEMM, prompt tokens, or 0 where it has no meaning.</summary>
    int DefaultSeq => 512;

    /// <summary>Runs the benchmark, reporting every figure through <see cref="BenchContext.Report"/>.</summary>
    void Run(BenchContext context);
}

/// <summary>The registry of workloads, in the order `--list` shows them.</summary>
public static class Workloads
{
    public static IReadOnlyList<IWorkload> All { get; } =
    [
        new GemmWorkload(),
        new PrefillWorkload(),
        new DecodeWorkload(),
        new TokenizerWorkload(),
        new TrainWorkload(),
        new SftWorkload(),
        new DdpWorkload(),
        new MemoryWorkload(),
        new ReportWorkload(),
        new DedupWorkload(),
        new CleanWorkload(),
    ];
}
