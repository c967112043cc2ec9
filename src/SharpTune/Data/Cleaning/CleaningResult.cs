namespace SharpTune.Data.Cleaning;

/// <summary>
/// A data command's outcome: the input, the records to write (JSON texts, input order) and the report;
/// <paramref name="OutputJsonArray"/> is the output's format where it is not the input's (`data convert`).
/// </summary>
public sealed record CleaningResult(DatasetRecordFile Input, IReadOnlyList<byte[]> Output, CleaningReport Report, bool? OutputJsonArray = null)
{
    /// <summary>
    /// Writes the output in the input's format and the report, each atomically; neither may be the input. A dry run
    /// passes no <paramref name="outputPath"/>.
    /// </summary>
    public void Save(string? outputPath, string? reportPath)
    {
        if (outputPath is not null && reportPath is not null
            && string.Equals(Path.GetFullPath(outputPath), Path.GetFullPath(reportPath), StringComparison.Ordinal))
            throw new ArgumentException($"--report {reportPath} is also --out: give the report its own file");
        if (reportPath is not null) Input.CheckNotInput(reportPath);
        if (outputPath is not null) Input.Write(outputPath, Output, OutputJsonArray);
        if (reportPath is not null) Report.Write(reportPath);
    }
}
