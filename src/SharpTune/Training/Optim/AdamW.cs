namespace SharpTune.Training.Optim;

/// <summary>
/// AdamW exactly as torch.optim.AdamW (single-tensor path): decoupled weight decay applied first, then the biased
/// moments, bias-corrected step. Scalars are formed in double and applied in float32, as torch does on CPU.
/// </summary>
public sealed class AdamW
{
    public IReadOnlyList<Parameter> Parameters { get; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    /// <summary>Optimizer steps taken so far (torch's per-parameter "step", the same for all parameters here).</summary>
    public long Step { get; private set; }

    /// <summary>First and second moments, one array per parameter in <see cref="Parameters"/> order (checkpoints save them).</summary>
    public float[][] ExpAvg { get; }
    public float[][] ExpAvgSq { get; }

    public AdamW(IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.0)
    {
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "adam betas must lie in [0, 1)");
        if (epsilon < 0) throw new ArgumentOutOfRangeException(nameof(epsilon), "adam_epsilon must not be negative");
        Parameters = parameters;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        ExpAvg = parameters.Select(p => new float[p.Length]).ToArray();
        ExpAvgSq = parameters.Select(p => new float[p.Length]).ToArray();
    }

    /// <summary>One update of every parameter from its Grad, at learning rate lr.</summary>
    public void Update(double lr)
    {
        Step++;
        double biasCorrection1 = 1 - Math.Pow(Beta1, Step);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, Step));
        float negStepSize = (float)(-lr / biasCorrection1);
        float b1 = (float)Beta1, oneMinusB1 = (float)(1 - Beta1);
        float b2 = (float)Beta2, oneMinusB2 = (float)(1 - Beta2);
        float bc2 = (float)biasCorrection2Sqrt, eps = (float)Epsilon;
        Parallel.For(0, Parameters.Count, i =>
        {
            var p = Parameters[i];
            float decay = p.WeightDecay ? (float)(1 - lr * WeightDecay) : 1f;
            float[] w = p.Data, g = p.Grad, m = ExpAvg[i], v = ExpAvgSq[i];
            for (int j = 0; j < w.Length; j++)
            {
                float gj = g[j];
                float wj = w[j] * decay;
                float mj = m[j] * b1 + oneMinusB1 * gj;
                float vj = v[j] * b2 + oneMinusB2 * gj * gj;
                float denom = MathF.Sqrt(vj) / bc2 + eps;
                m[j] = mj;
                v[j] = vj;
                w[j] = wj + negStepSize * mj / denom;
            }
        });
    }

    /// <summary>Restores the step count and moments from a checkpoint (arrays are copied in).</summary>
    public void Restore(long step, float[][] expAvg, float[][] expAvgSq)
    {
        if (expAvg.Length != Parameters.Count || expAvgSq.Length != Parameters.Count)
            throw new InvalidDataException($"optimizer state holds {expAvg.Length} parameters, the model trains {Parameters.Count}");
        for (int i = 0; i < Parameters.Count; i++)
        {
            if (expAvg[i].Length != Parameters[i].Length || expAvgSq[i].Length != Parameters[i].Length)
                throw new InvalidDataException($"optimizer state of '{Parameters[i].Name}' has the wrong size");
            expAvg[i].CopyTo(ExpAvg[i], 0);
            expAvgSq[i].CopyTo(ExpAvgSq[i], 0);
        }
        Step = step;
    }
}
