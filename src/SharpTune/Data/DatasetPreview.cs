namespace SharpTune.Data;

/// <summary>
/// A page of a registered dataset's records as training encodes them, for the web board's preview: each record
/// converted by <see cref="DatasetConverter"/> and tokenized by <see cref="SupervisedProcessor"/>, so its labels
/// show which tokens are trained and which are masked prompt. Supervised stages give one example per record,
/// the pairwise ones (rm, dpo) a chosen and a rejected one.
/// </summary>
public static class DatasetPreview
{
    /// <summary>The stages whose records a preview can encode.</summary>
    public static readonly IReadOnlyList<string> Stages = ["sft", "rm", "dpo"];

    /// <summary>One record: its examples (one, or chosen and rejected), or the problem that keeps it from training.</summary>
    public sealed record Record(int Index, string Location, IReadOnlyList<SupervisedExample> Examples, string? Problem);

    /// <summary>Records <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> − 1, and how many the dataset has.</summary>
    /// <exception cref="ArgumentException">A stage the preview does not encode.</exception>
    /// <exception cref="KeyNotFoundException">The dataset is not registered.</exception>
    /// <exception cref="InvalidDataException">Its entry is malformed, unusable by the stage, or its file unreadable.</exception>
    public static (IReadOnlyList<Record> Records, int Total) Page(DatasetRegistry registry, string dataset, string stage, SupervisedProcessor processor, int first, int count)
    {
        if (!Stages.Contains(stage)) throw new ArgumentException($"the preview encodes records of stages {string.Join(", ", Stages)}, not {stage}");
        var entry = registry.Get(dataset);
        entry.RequireUsableBy(stage);
        var page = new List<Record>();
        int index = 0;
        foreach (var (path, display) in DatasetFiles.Resolve(registry, entry))
            foreach (var raw in DatasetFiles.Read(path, display))
            {
                if (index >= first && index < first + count) page.Add(Encode(index, raw, entry, stage, processor));
                index++;
            }
        return (page, index);
    }

    private static Record Encode(int index, RawRecord raw, DatasetEntry entry, string stage, SupervisedProcessor processor)
    {
        if (raw.Problem is { } problem) return new Record(index, raw.Location, [], problem);
        try
        {
            if (stage == "sft") return new Record(index, raw.Location, [processor.Encode(DatasetConverter.Convert(entry, raw.Value))], null);
            var pair = processor.EncodePair(DatasetConverter.ConvertPairwise(entry, raw.Value));
            return new Record(index, raw.Location, [pair.Chosen, pair.Rejected], null);
        }
        catch (InvalidRecordException e)
        {
            return new Record(index, raw.Location, [], e.Message);
        }
    }
}
