using SharpTune.Data;

namespace SharpTune.Training.Objectives;

/// <summary>
/// The label tokens of a batch after the causal shift, in row order: token i is predicted at flattened row Rows[i]
/// (batch × length) of sequence Sequences[i] and must be Targets[i]. Labels of -100 carry no token.
/// </summary>
public sealed class LabelTokens
{
    public int[] Rows { get; }
    public int[] Targets { get; }
    public int[] Sequences { get; }
    /// <summary>Label tokens per sequence of the batch.</summary>
    public int[] CountPerSequence { get; }
    public int Count => Rows.Length;

    private LabelTokens(int[] rows, int[] targets, int[] sequences, int[] countPerSequence)
    {
        Rows = rows;
        Targets = targets;
        Sequences = sequences;
        CountPerSequence = countPerSequence;
    }

    public static LabelTokens Of(TrainingBatch batch)
    {
        int t = batch.Length;
        List<int> rows = [], targets = [], sequences = [];
        var counts = new int[batch.Batch];
        for (int b = 0; b < batch.Batch; b++)
            for (int i = 0; i + 1 < t; i++)
            {
                int label = batch.Labels[b * t + i + 1];
                if (label == CausalLmLoss.IgnoreIndex) continue;
                rows.Add(b * t + i);
                targets.Add(label);
                sequences.Add(b);
                counts[b]++;
            }
        return new LabelTokens(rows.ToArray(), targets.ToArray(), sequences.ToArray(), counts);
    }
}

/// <summary>
/// What a forward gives the objectives: each label token's log-probability, their sums and counts per sequence, and
/// the final normed hidden states [batch·length × hidden] (what a value head reads).
/// </summary>
public sealed record LabelLogProbs(LabelTokens Labels, double[] PerToken, double[] SumPerSequence, float[] Hidden);
