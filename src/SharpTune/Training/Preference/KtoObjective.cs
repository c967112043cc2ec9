using SharpTune.Training.Objectives;

namespace SharpTune.Training.Preference;

/// <summary>
/// What a KTO batch's policy pass gave, per example in batch order (<see cref="KtoObjective.Desirable"/> says which
/// are desirable): the policy's log-prob sums, the rewards β·(π − ρ), the per-example losses (weighted) and the mean
/// logits over each example's label positions.
/// </summary>
public sealed record KtoOutcome(double[] Policy, double[] Rewards, double[] Losses, double[] MeanLogits, double Kl);

/// <summary>
/// KTO (TRL's kto_loss, loss_type kto, as LLaMA-Factory's KTO trainer calls it) over a batch of examples tagged
/// desirable or not: with KL = max(0, mean(π_KL − ρ_KL)) computed beforehand without gradient, a desirable example
/// loses w_d·(1 − σ(β((π−ρ) − KL))), an undesirable one w_u·(1 − σ(β(KL − (π−ρ)))); the loss is the mean over all
/// examples. pref_ftx adds LLaMA-Factory's term ftx·mean_desirable(−π/label tokens)/n_desirable·n, rescaled as it is.
/// </summary>
public sealed class KtoObjective : ITrainingObjective
{
    private readonly double _beta, _desirableWeight, _undesirableWeight, _ftx, _kl;
    private readonly double[] _referenceSums;
    private LabelTokens? _labels;
    private float _gradScale;
    private float[] _sequenceGradient = [];

    public KtoObjective(double beta, double desirableWeight, double undesirableWeight, double ftx, bool[] desirable, double[] referenceSums, double kl)
    {
        if (!(beta > 0) || !double.IsFinite(beta)) throw new ArgumentException($"pref_beta must be a positive number, got {beta}");
        if (!(desirableWeight >= 0)) throw new ArgumentException($"kto_chosen_weight must not be negative, got {desirableWeight}");
        if (!(undesirableWeight >= 0)) throw new ArgumentException($"kto_rejected_weight must not be negative, got {undesirableWeight}");
        if (!(ftx >= 0)) throw new ArgumentException($"pref_ftx must not be negative, got {ftx}");
        if (referenceSums.Length != desirable.Length)
            throw new ArgumentException($"{referenceSums.Length} reference log-probs for {desirable.Length} examples");
        _beta = beta;
        _desirableWeight = desirableWeight;
        _undesirableWeight = undesirableWeight;
        _ftx = ftx;
        Desirable = desirable;
        _referenceSums = referenceSums;
        _kl = kl;
    }

    /// <summary>kto_tags: whether each example of the batch is desirable.</summary>
    public bool[] Desirable { get; }

    public KtoOutcome? Outcome { get; private set; }

    public bool NeedsLogProbsFirst => true;

    /// <summary>KL = max(0, mean(π_KL − ρ_KL)) over the mismatched (prompt, response) batch's log-prob sums.</summary>
    public static double KlEstimate(IReadOnlyList<double> policy, IReadOnlyList<double> reference)
    {
        if (policy.Count != reference.Count || policy.Count == 0)
            throw new ArgumentException($"the KL batch needs as many policy as reference log-probs, got {policy.Count} and {reference.Count}");
        double sum = 0;
        for (int i = 0; i < policy.Count; i++) sum += policy[i] - reference[i];
        return Math.Max(0, sum / policy.Count);
    }

    public void Begin(LabelTokens labels, float gradScale)
    {
        if (labels.CountPerSequence.Length != Desirable.Length)
            throw new ArgumentException($"{Desirable.Length} kto_tags for a batch of {labels.CountPerSequence.Length} rows");
        for (int s = 0; s < labels.CountPerSequence.Length; s++)
            if (labels.CountPerSequence[s] == 0) throw new ArgumentException($"example {s} of the batch has no label tokens");
        _labels = labels;
        _gradScale = gradScale;
        Outcome = null;
    }

    public void Observe(ReadOnlySpan<double> logProbs, ReadOnlySpan<double> meanLogits)
    {
        var labels = _labels ?? throw new InvalidOperationException("Begin was not called");
        int n = Desirable.Length;
        var sums = new double[n];
        var logits = new double[n];
        for (int i = 0; i < labels.Count; i++)
        {
            sums[labels.Sequences[i]] += logProbs[i];
            logits[labels.Sequences[i]] += meanLogits[i];
        }
        int desirableCount = Desirable.Count(d => d);
        var rewards = new double[n];
        var losses = new double[n];
        _sequenceGradient = new float[n];
        for (int s = 0; s < n; s++)
        {
            logits[s] /= labels.CountPerSequence[s];
            double ratio = sums[s] - _referenceSums[s];
            rewards[s] = _beta * ratio;
            double derivative;
            if (Desirable[s])
            {
                double sigma = PairLoss.Sigmoid(_beta * (ratio - _kl));
                losses[s] = _desirableWeight * (1 - sigma);
                derivative = -_desirableWeight * _beta * sigma * (1 - sigma);
                // LLaMA-Factory adds ftx·mean_d(−π/tokens)/n_d·n to the mean over the n examples: per desirable
                // example, n²/n_d² times ftx·(−π/tokens) in that mean.
                double rescale = (double)n * n / ((double)desirableCount * desirableCount);
                losses[s] += _ftx * (-sums[s] / labels.CountPerSequence[s]) * rescale;
                derivative -= _ftx / labels.CountPerSequence[s] * rescale;
            }
            else
            {
                double sigma = PairLoss.Sigmoid(_beta * (_kl - ratio));
                losses[s] = _undesirableWeight * (1 - sigma);
                derivative = _undesirableWeight * _beta * sigma * (1 - sigma);
            }
            _sequenceGradient[s] = (float)(_gradScale * derivative / n);
        }
        Outcome = new KtoOutcome(sums, rewards, losses, logits, _kl);
    }

    public float Gradient(int token, double logProb) => _sequenceGradient[_labels!.Sequences[token]];

    public LossResult Loss(ReadOnlySpan<double> logProbs)
    {
        var outcome = Outcome ?? throw new InvalidOperationException("the log-probs were not observed");
        return new LossResult(outcome.Losses.Sum(), outcome.Losses.Length);
    }
}
