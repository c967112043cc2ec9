using SharpTune.Data;

namespace SharpTune.Training.Objectives;

/// <summary>
/// A loss read from the final normed hidden states rather than from the logits: a value head's (the reward model's
/// pairwise loss, PPO's value loss). The model calls it after the forward and carries its gradient down through the
/// same backward as a token objective's.
/// </summary>
public interface IHiddenStateObjective
{
    /// <summary>
    /// Computes the loss from <paramref name="hidden"/> [batch·length × hidden] and writes gradScale·dLoss/d(hidden)
    /// into <paramref name="dHidden"/> (same shape, zero on entry), adding its own parameters' gradients as well.
    /// </summary>
    void Apply(TrainingBatch batch, ReadOnlySpan<float> hidden, float gradScale, Span<float> dHidden);
}
