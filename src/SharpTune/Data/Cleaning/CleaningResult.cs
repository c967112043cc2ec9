namespace SharpTune.Data.Cleaning;

/// <summary>
/// The outcome of `data convert`, which reads the whole file before it writes: the input, the records to write (JSON
/// texts, input order) and the report; <paramref name="OutputJsonArray"/> is the output's format.
/// </summary>
public sealed record CleaningResult(DatasetRecordFile Input, IReadOnlyList<byte[]> Output, CleaningReport Report, bool? OutputJsonArray = null)
{
    /// <summary>
    /// Writes the output in the input's format and the report, each atomically; neither may be the input. A dry run
    /// has no output path; a report with no path goes line by line to the targets' <see cref="StepTargets.ReportLines"/>.
    /// </summary>
    public StepSummary Save(StepTargets targets)
    {
        targets.Check(Input.Path);
        if (targets.OutputPath is { } outputPath) Input.Write(outputPath, Output, OutputJsonArray);
        if (targets.ReportPath is { } reportPath) Report.Write(reportPath);
        else if (targets.ReportLines is { } lines) Report.WriteTo(lines);
        return new StepSummary(Input.Records.Count, Output.Count, Report);
    }
}
