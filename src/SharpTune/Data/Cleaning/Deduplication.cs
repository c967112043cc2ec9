namespace SharpTune.Data.Cleaning;

/// <summary>
/// What `data dedup` found: for each record of the input, whether and why it is removed. The records themselves are
/// not held: <see cref="Save"/> reads the input again, streamed (<see cref="StreamedStep"/>), writing the kept records
/// and the report lines as they come, in the report all exact duplicates first, then near ones (a third pass over
/// the input when there are near duplicates), each in input order.
/// </summary>
public sealed class Deduplication
{
    private readonly string inputPath;
    private readonly int[] exactOf;
    private readonly string exactRule;
    private readonly Dictionary<int, (int Kept, double Similarity)> near;
    private readonly string nearRule;
    private CleaningReport? report;

    /// <param name="exactOf">For each record, the record it exactly duplicates (-1: none).</param>
    /// <param name="near">Each near-duplicate record's cluster's kept record and their estimated Jaccard similarity.</param>
    internal Deduplication(string inputPath, int[] exactOf, string exactRule, Dictionary<int, (int Kept, double Similarity)> near, string nearRule)
    {
        (this.inputPath, this.exactOf, this.exactRule, this.near, this.nearRule) = (inputPath, exactOf, exactRule, near, nearRule);
        KeptCount = exactOf.Count(of => of < 0) - near.Count;
    }

    /// <summary>The report, gathered in memory from a pass over the input when first asked for.</summary>
    public CleaningReport Report => report ??= Save(new StepTargets(null, null)).Report;

    /// <summary>How many records are kept (the first of each duplicate cluster and every unique one).</summary>
    public int KeptCount { get; }

    private bool Removed(int index) => exactOf[index] >= 0 || near.ContainsKey(index);

    /// <summary>
    /// Writes the kept records in the input's format and the report, each atomically; neither may be the input. A dry
    /// run has no output path; a report with no path goes line by line to the targets' <see cref="StepTargets.ReportLines"/>.
    /// </summary>
    public StepSummary Save(StepTargets targets) =>
        StreamedStep.Run(inputPath, targets, static _ => false, (record, _, report) =>
        {
            if (!Removed(record.Index)) return record.Json;
            if (exactOf[record.Index] is >= 0 and var kept)
            {
                report.Count(Deduplicator.ExactReason);
                report.Add(record, "removed", Deduplicator.ExactReason, exactRule, json => json.WriteNumber("duplicate_of", kept));
            }
            return null;
        }, report =>
        {
            if (near.Count == 0) return;
            foreach (var batch in DatasetRecordFile.ReadBatches(inputPath))
                foreach (var record in batch)
                {
                    if (!near.TryGetValue(record.Index, out var duplicate)) continue;
                    report.Count(Deduplicator.NearReason);
                    report.Add(record, "removed", Deduplicator.NearReason, nearRule, json =>
                    {
                        json.WriteNumber("duplicate_of", duplicate.Kept);
                        json.WriteNumber("cluster", duplicate.Kept);
                        json.WriteNumber("estimated_jaccard", Math.Round(duplicate.Similarity, 4));
                    });
                }
        });
}
