using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>
/// The scalars of one AdamW step and its element-wise update, shared by every AdamW variant so that they differ
/// only in where their moments live. torch.optim.AdamW's single-tensor path: the scalars are formed in double and
/// applied in float32, as torch does on CPU; decoupled weight decay first, then the biased moments, then
/// w += -lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε).
/// </summary>
internal readonly struct AdamWStep
{
    private readonly float _negStepSize, _b1, _oneMinusB1, _b2, _oneMinusB2, _bc2, _eps, _decay;

    public AdamWStep(AdamWHyperparameters h, double lr, long step)
    {
        double biasCorrection1 = 1 - Math.Pow(h.Beta1, step);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(h.Beta2, step));
        _negStepSize = (float)(-lr / biasCorrection1);
        _b1 = (float)h.Beta1;
        _oneMinusB1 = (float)(1 - h.Beta1);
        _b2 = (float)h.Beta2;
        _oneMinusB2 = (float)(1 - h.Beta2);
        _bc2 = (float)biasCorrection2Sqrt;
        _eps = (float)h.Epsilon;
        _decay = (float)(1 - lr * h.WeightDecay);
    }

    /// <summary>The multiplier of decoupled weight decay for <paramref name="p"/> (1 for parameters exempt from decay).</summary>
    public float DecayFor(Parameter p) => p.WeightDecay ? _decay : 1f;

    /// <summary>Updates the weights <paramref name="w"/> and the moments <paramref name="m"/>, <paramref name="v"/> in place.</summary>
    public void Apply(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float decay)
    {
        if (g.Length != w.Length || m.Length != w.Length || v.Length != w.Length)
            throw new ArgumentException($"AdamW update over {w.Length} weights got {g.Length} gradients and {m.Length}/{v.Length} moments");
        for (int j = 0; j < w.Length; j++)
        {
            float gj = g[j];
            float wj = w[j] * decay;
            float mj = m[j] * _b1 + _oneMinusB1 * gj;
            float vj = v[j] * _b2 + _oneMinusB2 * gj * gj;
            float denom = MathF.Sqrt(vj) / _bc2 + _eps;
            m[j] = mj;
            v[j] = vj;
            w[j] = wj + _negStepSize * mj / denom;
        }
    }
}

/// <summary>AdamW's hyperparameters (adam_beta1, adam_beta2, adam_epsilon, weight_decay), checked once.</summary>
public sealed record AdamWHyperparameters
{
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    public AdamWHyperparameters(double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.0)
    {
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), "adam betas must lie in [0, 1)");
        if (epsilon < 0) throw new ArgumentOutOfRangeException(nameof(epsilon), "adam_epsilon must not be negative");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
    }
}
