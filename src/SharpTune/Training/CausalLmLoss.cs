namespace SharpTune.Training;

/// <summary>
/// The causal language-modelling loss as transformers computes it: logits at position t predict labels at t+1,
/// positions whose label is -100 are ignored, and the loss is the mean over the remaining tokens.
/// </summary>
public static class CausalLmLoss
{
    public const int IgnoreIndex = -100;

    /// <param name="logits">[B·T × V] on the host</param>
    /// <param name="labels">[B][T], -100 where a token carries no loss</param>
    public static (double Loss, int Tokens) Compute(float[] logits, int[][] labels)
    {
        int batch = labels.Length, time = labels[0].Length, vocab = logits.Length / (batch * time);
        double total = 0;
        int count = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t + 1 < time; t++)
            {
                int target = labels[b][t + 1];
                if (target == IgnoreIndex) continue;
                if ((uint)target >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(labels), $"label {target} at [{b}, {t + 1}] is outside the vocabulary (0..{vocab - 1})");
                ReadOnlySpan<float> row = logits.AsSpan((b * time + t) * vocab, vocab);
                total += LogSumExp(row) - row[target];
                count++;
            }
        return (count == 0 ? double.NaN : total / count, count);
    }

    /// <summary>log Σ exp(x), in double around the maximum so large logits neither overflow nor lose digits.</summary>
    public static double LogSumExp(ReadOnlySpan<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (float v in row) if (v > max) max = v;
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }
}
