using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Training.Objectives;

namespace SharpTune.Training.Model;

/// <summary>
/// The rows a training forward computes for a right-padded batch [Batch × Length], and where its attention
/// sequences lie among them. Padding-free (every training and objective forward): each batch row keeps its tokens up
/// to the last one that is real or predicts a label, and the kept rows are laid back to back, so no layer spends work
/// on right padding (its rows feed no label, and no real query sees them under the causal mask, so every loss and
/// gradient is unchanged). Padded (the full logits of <c>check forward</c>): every row is kept. A row whose attention
/// mask numbers packed examples (neat_packing: 1, 1, 2, 2, 2, …, 0) is one attention sequence per example; any other
/// row is one sequence with its mask, as transformers attends. Positions are the batch's position_ids, else each
/// token's index in its row.
/// </summary>
internal sealed class RowLayout
{
    /// <summary>Rows computed.</summary>
    public int Rows { get; }
    /// <summary>The input id of each computed row.</summary>
    public int[] Ids { get; }
    /// <summary>The RoPE position of each computed row.</summary>
    public int[] Positions { get; }
    public AttentionSequences Sequences { get; }
    /// <summary>Rows of the batch (before its layout), and their length.</summary>
    public int Batch { get; }
    public int Length { get; }
    /// <summary>The longest attention sequence.</summary>
    public int LongestSequence { get; }

    private readonly int[] _start;
    private readonly int[] _kept;

    private RowLayout(int batch, int length, int[] start, int[] kept, int[] ids, int[] positions, AttentionSequences sequences)
    {
        Batch = batch;
        Length = length;
        _start = start;
        _kept = kept;
        Rows = ids.Length;
        Ids = ids;
        Positions = positions;
        Sequences = sequences;
        LongestSequence = sequences.Lengths.Max();
    }

    /// <summary>The computed row of the batch's flattened row <paramref name="batchRow"/> (b·Length + i), or −1 when it is dropped padding.</summary>
    public int Row(int batchRow)
    {
        int b = batchRow / Length, i = batchRow % Length;
        return i < _kept[b] ? _start[b] + i : -1;
    }

    /// <summary>Values [Batch·Length × width] in the batch's layout from computed rows [Rows × width]; dropped rows are zero.</summary>
    public float[] ToBatchRows(float[] rows, int width)
    {
        var batchRows = new float[(long)Batch * Length * width];
        for (int b = 0; b < Batch; b++)
            Array.Copy(rows, (long)_start[b] * width, batchRows, (long)b * Length * width, (long)_kept[b] * width);
        return batchRows;
    }

    /// <summary>Computed rows [Rows × width] from values in the batch's layout (what a dropped row holds is not read).</summary>
    public void FromBatchRows(float[] batchRows, int width, float[] rows)
    {
        for (int b = 0; b < Batch; b++)
            Array.Copy(batchRows, (long)b * Length * width, rows, (long)_start[b] * width, (long)_kept[b] * width);
    }

    /// <param name="paddingFree">Drop each row's right padding; false keeps every row (full logits).</param>
    /// <exception cref="ArgumentException">A row numbering packed examples out of order, or with padding before its last example.</exception>
    public static RowLayout Of(TrainingBatch batch, bool paddingFree)
    {
        int t = batch.Length;
        var start = new int[batch.Batch];
        var kept = new int[batch.Batch];
        for (int b = 0; b < batch.Batch; b++)
        {
            start[b] = b == 0 ? 0 : start[b - 1] + kept[b - 1];
            kept[b] = paddingFree ? KeptLength(batch, b) : t;
        }
        int rows = start[^1] + kept[^1];
        var ids = new int[rows];
        var positions = new int[rows];
        var keyMask = new int[rows];
        List<int> starts = [], lengths = [];
        for (int b = 0; b < batch.Batch; b++)
        {
            int from = b * t, to = start[b];
            Array.Copy(batch.InputIds, from, ids, to, kept[b]);
            for (int i = 0; i < kept[b]; i++)
            {
                positions[to + i] = batch.PositionIds?[from + i] ?? i;
                keyMask[to + i] = batch.AttentionMask[from + i] == 0 ? 0 : 1;
            }
            AddSequences(batch, b, to, kept[b], starts, lengths);
        }
        return new RowLayout(batch.Batch, t, start, kept, ids, positions, new AttentionSequences(starts.ToArray(), lengths.ToArray(), keyMask));
    }

    /// <summary>
    /// Row b's tokens up to its last real token or label row. A row that begins with padding (left padding) is kept
    /// whole: a query that sees no key attends to all of its row, padding included.
    /// </summary>
    private static int KeptLength(TrainingBatch batch, int b)
    {
        int t = batch.Length, from = b * t;
        if (batch.AttentionMask[from] == 0) return t;
        int kept = t;
        // Row i predicts the label at i + 1.
        while (kept > 1 && batch.AttentionMask[from + kept - 1] == 0 &&
               (kept == t || batch.Labels[from + kept] == CausalLmLoss.IgnoreIndex))
            kept--;
        return kept;
    }

    /// <summary>
    /// The attention sequences of row b's kept rows [to, to + kept): one for a 0/1 mask; one per packed example for
    /// a mask that numbers them (padding after the last example joins it as masked keys when kept).
    /// </summary>
    private static void AddSequences(TrainingBatch batch, int b, int to, int kept, List<int> starts, List<int> lengths)
    {
        var mask = batch.AttentionMask.AsSpan(b * batch.Length, batch.Length);
        if (mask.IndexOfAnyExcept(0, 1) < 0)
        {
            starts.Add(to);
            lengths.Add(kept);
            return;
        }
        int example = 0, begin = 0, last = mask.LastIndexOfAnyExcept(0);
        for (int i = 0; i < kept; i++)
        {
            int m = mask[i];
            if ((m == example && m != 0) || (m == 0 && i > last)) continue;
            if (m != example + 1)
                throw new ArgumentException(
                    $"row {b} of the batch: attention_mask value {m} at position {i} after example {example}; a packed row numbers its " +
                    "examples 1, 2, 3, … in order, with padding (0) only after the last one");
            if (example > 0)
            {
                starts.Add(to + begin);
                lengths.Add(i - begin);
            }
            example = m;
            begin = i;
        }
        starts.Add(to + begin);
        lengths.Add(kept - begin);
    }
}
