using SharpTune.Training.Objectives;

namespace SharpTune.Training.Preference;

/// <summary>What a pairwise batch's policy pass gave: per pair and per sequence, for the loss, the metrics and check pref.</summary>
/// <param name="PolicyChosen">π_c per pair: log-prob sums over the label tokens.</param>
/// <param name="PolicyRejected">π_r per pair (sums).</param>
/// <param name="Losses">Each pair's loss (pref_ftx's term included).</param>
/// <param name="SftLosses">−π_c / label tokens per pair: pref_ftx's term, orpo's sft_loss.</param>
/// <param name="MeanLogitsChosen">The mean of the logits over the chosen sequences' label positions and the vocabulary.</param>
public sealed record PairOutcome(
    double[] PolicyChosen, double[] PolicyRejected, double[] Losses, double[] SftLosses,
    double[] RewardsChosen, double[] RewardsRejected, double MeanLogitsChosen, double MeanLogitsRejected);

/// <summary>
/// The DPO family's objective over a pairwise batch laid out as LLaMA-Factory concatenates it: the chosen sequences in
/// rows 0..n−1, the rejected ones in rows n..2n−1. The loss is the mean over the pairs of <see cref="PairLoss"/> plus
/// pref_ftx·(−π_c / chosen label tokens); its gradient per label token is the sequence-level dLoss/dπ, so the model
/// computes the log-probs first (<see cref="NeedsLogProbsFirst"/>).
/// </summary>
public sealed class PairwiseObjective : ITrainingObjective
{
    private readonly PairLoss _loss;
    private readonly double _ftx;
    private readonly double[]? _referenceSums;
    private LabelTokens? _labels;
    private float _gradScale;
    private float[] _sequenceGradient = [];

    /// <param name="referenceSums">The reference model's log-prob sums per row of the batch; null for the losses without a reference.</param>
    public PairwiseObjective(PairLoss loss, double ftx, double[]? referenceSums)
    {
        if (loss.NeedsReference && referenceSums is null) throw new ArgumentException("this pref_loss needs the reference model's log-probs");
        if (!(ftx >= 0)) throw new ArgumentException($"pref_ftx must not be negative, got {ftx}");
        _loss = loss;
        _ftx = ftx;
        _referenceSums = referenceSums;
    }

    /// <summary>The last batch's outcome, set once its log-probs are known.</summary>
    public PairOutcome? Outcome { get; private set; }

    public bool NeedsLogProbsFirst => true;

    public void Begin(LabelTokens labels, float gradScale)
    {
        if (labels.CountPerSequence.Length % 2 != 0)
            throw new ArgumentException($"a pairwise batch holds chosen and rejected rows in two halves, got {labels.CountPerSequence.Length} rows");
        int pairs = labels.CountPerSequence.Length / 2;
        for (int s = 0; s < labels.CountPerSequence.Length; s++)
            if (labels.CountPerSequence[s] == 0)
                throw new ArgumentException($"the {(s < pairs ? "chosen" : "rejected")} sequence of pair {s % pairs} has no label tokens");
        if (_referenceSums is not null && _referenceSums.Length != labels.CountPerSequence.Length)
            throw new ArgumentException($"{_referenceSums.Length} reference log-probs for a batch of {labels.CountPerSequence.Length} rows");
        _labels = labels;
        _gradScale = gradScale;
        Outcome = null;
    }

    public void Observe(ReadOnlySpan<double> logProbs, ReadOnlySpan<double> meanLogits)
    {
        var labels = _labels ?? throw new InvalidOperationException("Begin was not called");
        int rows = labels.CountPerSequence.Length, pairs = rows / 2;
        var sums = new double[rows];
        var logitSums = new double[2];
        var tokens = new long[2];
        for (int i = 0; i < labels.Count; i++)
        {
            int s = labels.Sequences[i], half = s < pairs ? 0 : 1;
            sums[s] += logProbs[i];
            logitSums[half] += meanLogits[i];
            tokens[half]++;
        }
        double Value(double[] values, int s) => _loss.AveragesLogProbs ? values[s] / labels.CountPerSequence[s] : values[s];

        var losses = new double[pairs];
        var sft = new double[pairs];
        var rewardsChosen = new double[pairs];
        var rewardsRejected = new double[pairs];
        _sequenceGradient = new float[rows];
        for (int p = 0; p < pairs; p++)
        {
            int c = p, r = pairs + p;
            var terms = _loss.Compute(Value(sums, c), Value(sums, r),
                _referenceSums is null ? 0 : Value(_referenceSums, c), _referenceSums is null ? 0 : Value(_referenceSums, r));
            int chosenTokens = labels.CountPerSequence[c];
            sft[p] = -sums[c] / chosenTokens;
            losses[p] = terms.Loss + _ftx * sft[p];
            rewardsChosen[p] = terms.RewardChosen;
            rewardsRejected[p] = terms.RewardRejected;
            // d/d(sum) = d/d(average) / tokens; the mean over pairs divides by their count.
            double dChosen = (_loss.AveragesLogProbs ? terms.DChosen / chosenTokens : terms.DChosen) - _ftx / chosenTokens;
            double dRejected = _loss.AveragesLogProbs ? terms.DRejected / labels.CountPerSequence[r] : terms.DRejected;
            _sequenceGradient[c] = (float)(_gradScale * dChosen / pairs);
            _sequenceGradient[r] = (float)(_gradScale * dRejected / pairs);
        }
        Outcome = new PairOutcome(sums[..pairs], sums[pairs..], losses, sft, rewardsChosen, rewardsRejected,
            logitSums[0] / tokens[0], logitSums[1] / tokens[1]);
    }

    public float Gradient(int token, double logProb) => _sequenceGradient[_labels!.Sequences[token]];

    public LossResult Loss(ReadOnlySpan<double> logProbs)
    {
        var outcome = Outcome ?? throw new InvalidOperationException("the log-probs were not observed");
        return new LossResult(outcome.Losses.Sum(), outcome.Losses.Length);
    }
}
