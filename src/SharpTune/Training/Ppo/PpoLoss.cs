using SharpTune.Data;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Training.Ppo;

/// <summary>
/// The policy half of TRL 0.9's PPOTrainer.loss over one mini-batch: the clipped policy loss averaged over every
/// response token of the mini-batch (masked_mean), against the log-probs and advantages the step computed before its
/// epochs. It observes the log-probs first because TRL zeroes the whole loss (policy and value) of a mini-batch whose
/// mean ratio exceeds ratio_threshold; <see cref="PpoValueLoss"/> reads that decision.
/// </summary>
/// <param name="oldLogProbs">The step's log-probs of the mini-batch's response tokens, in label-token order.</param>
/// <param name="advantages">The whitened advantages of the same tokens.</param>
public sealed class PpoPolicyLoss(double[] oldLogProbs, double[] advantages, double clipRange, double ratioThreshold) : ITrainingObjective
{
    private float _gradScale;
    private float[] _gradients = [];

    /// <summary>Whether the mini-batch's mean ratio exceeded ratio_threshold, so its losses count as 0.</summary>
    public bool Skipped { get; private set; }
    /// <summary>pg_loss after the ratio check.</summary>
    public double Loss { get; private set; }
    public double ClipFraction { get; private set; }
    /// <summary>TRL's policy/approxkl: ½·mean((log π − log π_old)²).</summary>
    public double ApproxKl { get; private set; }
    /// <summary>TRL's policy/policykl: mean(log π_old − log π).</summary>
    public double PolicyKl { get; private set; }
    public double MeanRatio { get; private set; }

    public bool NeedsLogProbsFirst => true;

    public void Begin(LabelTokens labels, float gradScale)
    {
        if (labels.Count != oldLogProbs.Length)
            throw new ArgumentException($"the mini-batch has {labels.Count} response tokens but {oldLogProbs.Length} old log-probs");
        _gradScale = gradScale;
    }

    public void Observe(ReadOnlySpan<double> logProbs, ReadOnlySpan<double> meanLogits)
    {
        int n = logProbs.Length;
        var losses = new double[n];
        _gradients = new float[n];
        double ratioSum = 0, approx = 0, policyKl = 0;
        int clipped = 0;
        for (int i = 0; i < n; i++)
        {
            var (loss, gradient, wasClipped) = PpoMath.PolicyLoss(logProbs[i], oldLogProbs[i], advantages[i], clipRange);
            losses[i] = loss;
            _gradients[i] = (float)(gradient * _gradScale / n);
            if (wasClipped) clipped++;
            double difference = logProbs[i] - oldLogProbs[i];
            ratioSum += Math.Exp(difference);
            approx += difference * difference;
            policyKl -= difference;
        }
        MeanRatio = ratioSum / n;
        Skipped = MeanRatio > ratioThreshold;
        Loss = Skipped ? 0 : losses.Sum() / n;
        if (Skipped) Array.Clear(_gradients);
        ClipFraction = (double)clipped / n;
        ApproxKl = 0.5 * approx / n;
        PolicyKl = policyKl / n;
    }

    public float Gradient(int token, double logProb) => _gradients[token];

    LossResult ITrainingObjective.Loss(ReadOnlySpan<double> logProbs) => new(Loss * logProbs.Length, logProbs.Length);
}

/// <summary>
/// The value half of TRL 0.9's PPOTrainer.loss: the policy's value head read at each response token's row (the row
/// that predicts it, values[:, :-1] in TRL), with the head's training dropout, vf_loss = ½·mean(max((v − R)²,
/// (clip(v, v_old ± ε) − R)²)) over the mini-batch's response tokens, scaled by vf_coef into the loss; zero when the
/// policy loss found the mean ratio past ratio_threshold.
/// </summary>
public sealed class PpoValueLoss(ValueHead head, PpoPolicyLoss policy, double[] oldValues, double[] returns, double clipRange, double coefficient,
    SeededRandom dropout) : IHiddenStateObjective
{
    /// <summary>vf_loss before vf_coef, after the ratio check.</summary>
    public double Loss { get; private set; }
    public double ClipFraction { get; private set; }
    /// <summary>TRL's val/vpred: the mean predicted value.</summary>
    public double MeanPrediction { get; private set; }

    public void Apply(TrainingBatch batch, ReadOnlySpan<float> hidden, float gradScale, Span<float> dHidden)
    {
        var labels = LabelTokens.Of(batch);
        int n = labels.Count, h = head.HiddenSize;
        if (n != oldValues.Length) throw new ArgumentException($"the mini-batch has {n} response tokens but {oldValues.Length} old values");
        double sum = 0, predicted = 0;
        int clipped = 0;
        for (int i = 0; i < n; i++)
        {
            int row = labels.Rows[i];
            var mask = head.DropoutMask(dropout);
            double value = head.Score(hidden.Slice(row * h, h), mask);
            var (loss, gradient, wasClipped) = PpoMath.ValueLoss(value, oldValues[i], returns[i], clipRange);
            sum += loss;
            predicted += value;
            if (wasClipped) clipped++;
            if (!policy.Skipped) head.Backward(hidden.Slice(row * h, h), gradScale * coefficient * 0.5 * gradient / n, dHidden.Slice(row * h, h), mask);
        }
        Loss = policy.Skipped ? 0 : 0.5 * sum / n;
        ClipFraction = (double)clipped / n;
        MeanPrediction = predicted / n;
    }
}
