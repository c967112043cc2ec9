using SharpTune.IO;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// Where a data step writes: the records (null: nowhere, a dry run) in the input's format, and the report, to
/// <paramref name="ReportPath"/> or, with none, line by line to <paramref name="ReportLines"/> (none: kept in memory).
/// </summary>
public sealed record StepTargets(string? OutputPath, string? ReportPath, Action<byte[]>? ReportLines = null)
{
    /// <summary>Neither file may be the input, nor the two the same file.</summary>
    public void Check(string inputPath)
    {
        if (OutputPath is not null && ReportPath is not null
            && string.Equals(Path.GetFullPath(OutputPath), Path.GetFullPath(ReportPath), StringComparison.Ordinal))
            throw new ArgumentException($"--report {ReportPath} is also --out: give the report its own file");
        if (ReportPath is not null) DatasetRecordFile.CheckNotInput(inputPath, ReportPath);
        if (OutputPath is not null) DatasetRecordFile.CheckNotInput(inputPath, OutputPath);
    }
}

/// <summary>What a data step did: records read and written, and its report (counts per reason, entries).</summary>
public sealed record StepSummary(int Read, int Written, CleaningReport Report);

/// <summary>
/// A data step that looks at one record at a time (clean, scrub, convert; dedup once it knows what it removes), streamed: records read in batches
/// (<see cref="DatasetRecordFile.ReadBatches"/>), each batch processed on all cores, then taken in input order, the
/// kept records and the report lines written as they come. Memory holds one batch, whatever the file's size. Both
/// files are written atomically (temporary siblings renamed into place once the last record is written), so a
/// failure on any record, or a crash, leaves neither a half file nor a changed one.
/// </summary>
public static class StreamedStep
{
    /// <param name="process">Runs on all cores: must be thread-safe.</param>
    /// <param name="keep">Runs in input order: reports the record if it must and returns the JSON to write, or null to leave it out.</param>
    /// <param name="beforeCommit">Runs after the last record, before either file is put in place: a check over the whole file, or report lines that come after every record's.</param>
    public static StepSummary Run<T>(string inputPath, StepTargets targets, Func<DatasetRecord, T> process,
        Func<DatasetRecord, T, CleaningReport, byte[]?> keep, Action<CleaningReport>? beforeCommit = null)
    {
        targets.Check(inputPath);
        DatasetRecordFile.CheckJsonInput(inputPath);
        return Run(inputPath, DatasetRecordFile.ReadBatches(inputPath), DatasetRecordFile.IsJsonArray(inputPath), targets, process, keep, beforeCommit);
    }

    /// <summary>As the step over a JSON file, over <paramref name="batches"/> of <paramref name="inputPath"/>'s records, written as a JSON array or JSON Lines as <paramref name="jsonArray"/> says (`data convert`).</summary>
    public static StepSummary Run<T>(string inputPath, IEnumerable<IReadOnlyList<DatasetRecord>> batches, bool jsonArray, StepTargets targets,
        Func<DatasetRecord, T> process, Func<DatasetRecord, T, CleaningReport, byte[]?> keep, Action<CleaningReport>? beforeCommit = null)
    {
        targets.Check(inputPath);
        int read = 0, written = 0;
        CleaningReport report = null!;

        void Stream(Stream? output, Stream? reportFile)
        {
            report = new CleaningReport(reportFile is null ? targets.ReportLines : line =>
            {
                reportFile.Write(line);
                reportFile.Write("\n"u8);
            });
            var writer = output is null ? null : new DatasetRecordFile.RecordWriter(output, jsonArray);
            foreach (var batch in batches)
            {
                var outcomes = new T[batch.Count];
                Parallel.For(0, batch.Count, i => outcomes[i] = process(batch[i]));
                for (int i = 0; i < batch.Count; i++)
                    if (keep(batch[i], outcomes[i], report) is { } json)
                    {
                        writer?.Add(json);
                        written++;
                    }
                read += batch.Count;
            }
            writer?.End();
            beforeCommit?.Invoke(report);
        }

        if (targets.ReportPath is { } reportPath)
            AtomicFile.Write(reportPath, reportFile =>
            {
                if (targets.OutputPath is { } outputPath) AtomicFile.Write(outputPath, output => Stream(output, reportFile));
                else Stream(null, reportFile);
            });
        else if (targets.OutputPath is { } outputPath) AtomicFile.Write(outputPath, output => Stream(output, null));
        else Stream(null, null);
        return new StepSummary(read, written, report);
    }
}
