namespace SharpTune.Training.Objectives;

/// <summary>
/// A training loss over a batch's label-token log-probabilities, kept apart from the model: the model computes the
/// log-probs chunk by chunk (the logits of a chunk of label rows at a time) and asks the objective for the upstream
/// gradient dLoss/d(log p) of each token, which it turns into the logits' gradient. An objective whose gradient needs
/// whole sequences first (DPO's log-ratio of sums) computes it from <c>DecoderModel.LogProbs</c> before the
/// backward pass and answers <see cref="Gradient"/> from that.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>Prepares for a batch; every gradient is to be multiplied by <paramref name="gradScale"/>.</summary>
    void Begin(LabelTokens labels, float gradScale);

    /// <summary>
    /// dLoss/d(log p) of label token <paramref name="token"/> given its log-prob; called from several threads at once,
    /// so it may only read what <see cref="Begin"/> set.
    /// </summary>
    float Gradient(int token, double logProb);

    /// <summary>The batch's loss from every label token's log-prob, in token order.</summary>
    LossResult Loss(ReadOnlySpan<double> logProbs);
}
