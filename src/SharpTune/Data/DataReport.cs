using System.Text;

namespace SharpTune.Data;

/// <summary>What one registered dataset contributed.</summary>
/// <param name="Split">"train" (from <c>dataset</c>) or "eval" (from <c>eval_dataset</c>).</param>
/// <param name="Records">Records read (after num_samples and max_samples).</param>
/// <param name="Examples">Examples made from them.</param>
/// <param name="Skipped">Malformed records skipped (lenient mode only; strict mode stops at the first one).</param>
public sealed record DatasetSummary(string Name, string Split, int Records, int Examples, int Skipped);

/// <summary>
/// The outcome of preparing the data: per-dataset counts, every skipped record counted and the first
/// <see cref="MaxProblems"/> of them quoted, and the final train/eval sizes. Skipping is never silent.
/// </summary>
public sealed class DataReport
{
    public const int MaxProblems = 5;

    private readonly List<DatasetSummary> datasets = [];
    private readonly List<string> problems = [];

    public IReadOnlyList<DatasetSummary> Datasets => datasets;

    /// <summary>The first <see cref="MaxProblems"/> skipped records, each "file: record N: reason".</summary>
    public IReadOnlyList<string> Problems => problems;

    public int SkippedRecords => datasets.Sum(d => d.Skipped);

    public int TrainExamples { get; internal set; }
    public int EvalExamples { get; internal set; }

    /// <summary>True when examples were packed into blocks (train/eval counts are then blocks).</summary>
    public bool Packed { get; internal set; }

    internal void Add(DatasetSummary summary, IEnumerable<string> skipped)
    {
        datasets.Add(summary);
        foreach (string problem in skipped)
        {
            if (problems.Count >= MaxProblems) break;
            problems.Add(problem);
        }
    }

    /// <summary>A few lines for the log.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var d in datasets)
            sb.AppendLine($"{d.Split} dataset '{d.Name}': {d.Records} records, {d.Examples} examples" + (d.Skipped > 0 ? $", {d.Skipped} skipped" : ""));
        if (SkippedRecords > 0)
        {
            sb.AppendLine($"skipped {SkippedRecords} malformed record(s); the first {problems.Count}:");
            foreach (string p in problems) sb.AppendLine("  " + p);
        }
        string unit = Packed ? "packed blocks" : "examples";
        sb.Append($"train: {TrainExamples} {unit}, eval: {EvalExamples} {unit}");
        return sb.ToString();
    }
}
