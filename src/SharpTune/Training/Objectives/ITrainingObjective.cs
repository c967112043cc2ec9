namespace SharpTune.Training.Objectives;

/// <summary>
/// A training loss over a batch's label-token log-probabilities, kept apart from the model: the model computes the
/// log-probs chunk by chunk (the logits of a chunk of label rows at a time) and asks the objective for the upstream
/// gradient dLoss/d(log p) of each token, which it turns into the logits' gradient. An objective whose gradient needs
/// whole sequences first (DPO's log-ratio of sums) says so with <see cref="NeedsLogProbsFirst"/>: the model then
/// computes every label token's log-prob in a pass over the chunks, hands them to <see cref="Observe"/>, and then asks
/// for the gradients: with a frozen lm_head the same pass backpropagated a unit gradient per token and each label
/// row's gradient is scaled by the answer; a trained lm_head gets a second pass over the chunks (an extra lm_head
/// product over the label rows, not a second forward).
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

    /// <summary>Whether <see cref="Gradient"/> depends on whole sequences, so the log-probs must be known before it is asked.</summary>
    bool NeedsLogProbsFirst => false;

    /// <summary>
    /// With <see cref="NeedsLogProbsFirst"/>, called after <see cref="Begin"/> and before any <see cref="Gradient"/>:
    /// every label token's log-prob, and the mean over the vocabulary of the logits at its row (what TRL logs as
    /// logits/chosen and logits/rejected), in token order.
    /// </summary>
    void Observe(ReadOnlySpan<double> logProbs, ReadOnlySpan<double> meanLogits) { }

    /// <summary>The batch's loss from every label token's log-prob, in token order.</summary>
    LossResult Loss(ReadOnlySpan<double> logProbs);
}
