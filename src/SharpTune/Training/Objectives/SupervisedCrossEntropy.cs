namespace SharpTune.Training.Objectives;

/// <summary>
/// SFT's loss, transformers' causal LM loss: the mean negative log-likelihood of the label tokens, so each token's
/// upstream gradient is −gradScale / (label tokens of the batch).
/// </summary>
public sealed class SupervisedCrossEntropy : ITrainingObjective
{
    private float _coefficient;

    public void Begin(LabelTokens labels, float gradScale) => _coefficient = gradScale / labels.Count;

    public float Gradient(int token, double logProb) => -_coefficient;

    public LossResult Loss(ReadOnlySpan<double> logProbs)
    {
        double sum = 0;
        foreach (double logProb in logProbs) sum += -logProb;
        return new LossResult(sum, logProbs.Length);
    }
}
