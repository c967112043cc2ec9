using SharpTune.Data;

namespace SharpTune.Training.Trainer;

/// <summary>
/// How a stage's examples become the model's batches: all the trainer and the evaluation loop know of a stage's data.
/// A stage with other examples (a preference pair, say) brings its own collator; the trainer does not change.
/// </summary>
public interface IBatchCollator<in TExample>
{
    TrainingBatch Collate(IReadOnlyList<TExample> examples);
}

/// <summary>sft and pt: right-padded with the pad id, labels with -100 (<see cref="SupervisedCollator"/>).</summary>
public sealed class SupervisedBatches(int padTokenId) : IBatchCollator<SupervisedExample>
{
    public TrainingBatch Collate(IReadOnlyList<SupervisedExample> examples) => SupervisedCollator.Collate(examples, padTokenId);
}
