namespace SharpTune.Training.Ppo;

/// <summary>
/// TRL 0.9's PPO arithmetic (trl/core.py and PPOTrainer.compute_rewards/compute_advantages, the version LLaMA-Factory
/// pins) over the response tokens of a batch. TRL keeps [batch × length] tensors with a mask over the response
/// positions; here each sequence holds just its response tokens (ragged), which gives the same numbers: every masked
/// statistic is a sum over the masked positions, and the positions after a response add nothing to its GAE.
/// </summary>
public static class PpoMath
{
    /// <summary>torch.rsqrt(var + 1e-8) in TRL's whiten.</summary>
    private const double WhitenEpsilon = 1e-8;

    /// <summary>masked_mean: the mean over every token of every sequence.</summary>
    public static double Mean(double[][] values)
    {
        double sum = 0;
        long count = 0;
        foreach (var row in values)
        {
            foreach (double v in row) sum += v;
            count += row.Length;
        }
        return count == 0 ? throw new ArgumentException("no tokens to average") : sum / count;
    }

    /// <summary>masked_var with Bessel's correction (unbiased, TRL's default): it needs at least two tokens.</summary>
    public static double Variance(double[][] values)
    {
        double mean = Mean(values), sum = 0;
        long count = 0;
        foreach (var row in values)
        {
            foreach (double v in row) sum += (v - mean) * (v - mean);
            count += row.Length;
        }
        if (count < 2) throw new ArgumentException("the variance of fewer than two tokens is undefined (TRL: the mask sum is one)");
        return sum / count * count / (count - 1);
    }

    /// <summary>masked_whiten: (x − mean)/√(var + 1e-8), the mean added back when <paramref name="shiftMean"/> is false.</summary>
    public static double[][] Whiten(double[][] values, bool shiftMean)
    {
        double mean = Mean(values), scale = 1 / Math.Sqrt(Variance(values) + WhitenEpsilon);
        return values.Select(row => row.Select(v => (v - mean) * scale + (shiftMean ? 0 : mean)).ToArray()).ToArray();
    }

    /// <summary>
    /// compute_rewards with kl_penalty "kl": per token kl = log π − log π_ref and reward = −klCoef·kl, the sequence's
    /// score added at its last token.
    /// </summary>
    public static (double[][] Rewards, double[][] Kls) Rewards(double[] scores, double[][] logProbs, double[][] referenceLogProbs, double klCoef)
    {
        var rewards = new double[scores.Length][];
        var kls = new double[scores.Length][];
        for (int s = 0; s < scores.Length; s++)
        {
            int n = logProbs[s].Length;
            if (n == 0 || referenceLogProbs[s].Length != n) throw new ArgumentException($"sequence {s}: {n} response log-probs and {referenceLogProbs[s].Length} reference ones");
            kls[s] = new double[n];
            rewards[s] = new double[n];
            for (int t = 0; t < n; t++)
            {
                kls[s][t] = logProbs[s][t] - referenceLogProbs[s][t];
                rewards[s][t] = -klCoef * kls[s][t];
            }
            rewards[s][n - 1] += scores[s];
        }
        return (rewards, kls);
    }

    /// <summary>
    /// compute_advantages: optionally whitened rewards (mean kept), GAE backwards over each response (δ_t = r_t +
    /// γ·V_{t+1} − V_t with V after the last token 0; A_t = δ_t + γλ·A_{t+1}), returns = A + V, then the advantages
    /// whitened over the batch.
    /// </summary>
    public static (double[][] Advantages, double[][] Returns) Advantages(double[][] values, double[][] rewards, double gamma, double lambda, bool whitenRewards)
    {
        if (whitenRewards) rewards = Whiten(rewards, shiftMean: false);
        var advantages = new double[values.Length][];
        var returns = new double[values.Length][];
        for (int s = 0; s < values.Length; s++)
        {
            int n = values[s].Length;
            if (rewards[s].Length != n) throw new ArgumentException($"sequence {s}: {n} values and {rewards[s].Length} rewards");
            advantages[s] = new double[n];
            returns[s] = new double[n];
            double last = 0;
            for (int t = n - 1; t >= 0; t--)
            {
                double next = t < n - 1 ? values[s][t + 1] : 0;
                double delta = rewards[s][t] + gamma * next - values[s][t];
                last = delta + gamma * lambda * last;
                advantages[s][t] = last;
                returns[s][t] = last + values[s][t];
            }
        }
        return (Whiten(advantages, shiftMean: true), returns);
    }

    /// <summary>
    /// One token's clipped policy loss max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = exp(log π − log π_old), and its derivative
    /// in log π: −A·ρ where the unclipped term is the larger, 0 where the clipped one is (it is constant there).
    /// </summary>
    public static (double Loss, double Gradient, bool Clipped) PolicyLoss(double logProb, double oldLogProb, double advantage, double clipRange)
    {
        double ratio = Math.Exp(logProb - oldLogProb);
        double unclipped = -advantage * ratio;
        double clipped = -advantage * Math.Clamp(ratio, 1 - clipRange, 1 + clipRange);
        // d(−A·ρ)/d(log π) = −A·ρ, since dρ/d(log π) = ρ.
        return clipped > unclipped ? (clipped, 0, true) : (unclipped, -advantage * ratio, false);
    }

    /// <summary>
    /// One token's clipped value loss max((v − R)², (clip(v, v_old − ε, v_old + ε) − R)²) (TRL halves its mean) and its
    /// derivative in v: 2(v − R) where the unclipped term is the larger, 0 where the clipped one is.
    /// </summary>
    public static (double Loss, double Gradient, bool Clipped) ValueLoss(double value, double oldValue, double returns, double clipRange)
    {
        double unclipped = (value - returns) * (value - returns);
        double c = Math.Clamp(value, oldValue - clipRange, oldValue + clipRange) - returns;
        double clipped = c * c;
        return clipped > unclipped ? (clipped, 0, true) : (unclipped, 2 * (value - returns), false);
    }
}

/// <summary>
/// TRL's AdaptiveKLController (Ziegler et al.): the KL coefficient moves towards the KL that hits <see cref="Target"/>,
/// by a proportional error clipped to ±0.2, scaled by the steps taken over the horizon.
/// </summary>
public sealed class AdaptiveKlController(double initialCoefficient, double target, double horizon)
{
    public double Value { get; set; } = initialCoefficient;
    public double Target { get; } = target;
    public double Horizon { get; } = horizon;

    /// <param name="currentKl">objective/kl: the batch's mean over sequences of the summed per-token KL.</param>
    /// <param name="steps">The batch's sequences (TRL passes batch_size).</param>
    public void Update(double currentKl, int steps)
    {
        double error = Math.Clamp(currentKl / Target - 1, -0.2, 0.2);
        Value *= 1 + error * steps / Horizon;
    }
}

/// <summary>
/// TRL's RunningMoments (ppo_score_norm: use_score_scaling and use_score_norm): the running mean and standard
/// deviation of the scores, merged batch by batch (Chan et al.), starting from mean 0, variance 1 and a count of 1e-24.
/// </summary>
public sealed class RunningMoments
{
    /// <summary>torch.finfo(torch.float32).eps, which TRL adds to the running std.</summary>
    private const double Float32Epsilon = 1.1920928955078125e-07;

    public double Mean { get; set; }
    public double Variance { get; set; } = 1;
    public double Std { get; set; } = 1;
    public double Count { get; set; } = 1e-24;

    /// <summary>Adds a batch; the scores normalised as TRL's step does: (x − mean)/(std + float32 eps), after the update.</summary>
    public double[] Normalize(double[] scores)
    {
        int n = scores.Length;
        double batchMean = scores.Average();
        double batchVar = scores.Sum(x => (x - batchMean) * (x - batchMean)) / n;
        double delta = batchMean - Mean, total = Count + n;
        double sum = Variance * Count + delta * delta * Count * n / total + batchVar * n;
        Mean += delta * n / total;
        Variance = sum / total;
        Std = Math.Sqrt(Variance * total / (total - 1));
        Count = total;
        double scale = Std + Float32Epsilon;
        return scores.Select(x => (x - Mean) / scale).ToArray();
    }
}
