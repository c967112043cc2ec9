using SharpTune.Data;
using SharpTune.Training.Model;

namespace SharpTune.Training.Preference;

/// <summary>
/// The reference model ρ of a preference objective: log-prob sums per sequence, always without gradient and without
/// dropout. Either the policy's own weights with every tuner disabled (a tuner such as LoRA without ref_model: no
/// second copy) or a model of its own, loaded for evaluation only (ref_model, or the frozen starting weights of full
/// and freeze tuning).
/// </summary>
public abstract class ReferenceModel : IDisposable
{
    /// <summary>ρ: the sum of the label tokens' log-probs of each row of the batch.</summary>
    public abstract double[] LogProbSums(TrainingBatch batch);

    /// <summary>Every label token's log-prob, in <see cref="Objectives.LabelTokens"/> order (PPO's per-token reference).</summary>
    public abstract double[] TokenLogProbs(TrainingBatch batch);

    /// <summary>Bytes the reference holds beyond the policy's (its own weights; nothing when it is the policy's).</summary>
    public abstract long ExtraBytes { get; }

    public virtual void Dispose() { }

    /// <summary>
    /// The reference without ref_model, as LLaMA-Factory builds it: a policy with tuner layers (LoRA, …) is its own
    /// reference with the tuners disabled; one without (full and freeze tuning) gets a frozen copy of its starting
    /// weights from <paramref name="loadStartingWeights"/>.
    /// </summary>
    public static ReferenceModel ForPolicy(DecoderModel policy, Func<DecoderModel> loadStartingWeights) =>
        policy.Linears.Any(l => l.Tuners.Count > 0) ? TunersDisabled(policy) : Separate(loadStartingWeights());

    /// <summary>The policy with its tuners disabled for the reference pass.</summary>
    public static ReferenceModel TunersDisabled(DecoderModel policy) => new DisabledTuners(policy);

    /// <summary>A model of its own, used for evaluation only; disposed with the reference.</summary>
    public static ReferenceModel Separate(DecoderModel model) => new SeparateModel(model);

    private sealed class DisabledTuners(DecoderModel policy) : ReferenceModel
    {
        public override long ExtraBytes => 0;

        public override double[] LogProbSums(TrainingBatch batch)
        {
            using (policy.DisableTuners()) return policy.LogProbs(batch).SumPerSequence;
        }

        public override double[] TokenLogProbs(TrainingBatch batch)
        {
            using (policy.DisableTuners()) return policy.LogProbs(batch).PerToken;
        }
    }

    private sealed class SeparateModel(DecoderModel model) : ReferenceModel
    {
        public override long ExtraBytes => model.StorageBytes;

        public override double[] LogProbSums(TrainingBatch batch) => model.LogProbs(batch).SumPerSequence;

        public override double[] TokenLogProbs(TrainingBatch batch) => model.LogProbs(batch).PerToken;

        public override void Dispose() => model.Dispose();
    }
}
