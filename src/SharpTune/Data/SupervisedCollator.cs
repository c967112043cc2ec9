namespace SharpTune.Data;

/// <summary>
/// Dynamic padding: a batch is as long as its longest example; input ids are right-padded with the pad id,
/// attention mask with 0 and labels with -100 (as LLaMA-Factory's collator does for training), and position ids, when
/// the examples carry them (packed blocks), with 0 as LLaMA-Factory pads a block's.
/// </summary>
public static class SupervisedCollator
{
    public const int IgnoreIndex = -100;

    public static TrainingBatch Collate(IReadOnlyList<SupervisedExample> examples, int padTokenId)
    {
        if (examples.Count == 0) throw new ArgumentException("cannot collate an empty batch");
        int length = examples.Max(e => e.Length);
        if (length == 0) throw new ArgumentException("every example in the batch is empty");
        int rows = examples.Count;
        var ids = new int[rows * length];
        var mask = new int[rows * length];
        var labels = new int[rows * length];
        int[]? positions = examples.Any(e => e.PositionIds is not null) ? new int[rows * length] : null;
        Array.Fill(ids, padTokenId);
        Array.Fill(labels, IgnoreIndex);
        for (int r = 0; r < rows; r++)
        {
            var e = examples[r];
            e.InputIds.CopyTo(ids, r * length);
            e.AttentionMask.CopyTo(mask, r * length);
            e.Labels.CopyTo(labels, r * length);
            if (positions is null) continue;
            for (int i = 0; i < e.Length; i++) positions[r * length + i] = e.PositionIds?[i] ?? i;
        }
        return new TrainingBatch(rows, length, ids, mask, labels) { PositionIds = positions };
    }
}
