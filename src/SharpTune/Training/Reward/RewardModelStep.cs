using SharpTune.Data;
using SharpTune.Training.Trainer;

namespace SharpTune.Training.Reward;

/// <summary>
/// Stage rm's step, LLaMA-Factory's PairwiseTrainer: a batch of pairs collated as chosen rows then rejected rows, the
/// pairwise loss, and the share of pairs the model ranks right stored as <c>accuracy</c> (logged beside the loss,
/// and as eval_accuracy after an evaluation, as LLaMA-Factory's ComputeAccuracy reports it).
/// </summary>
public sealed class RewardModelStep(RewardModel model, int padTokenId) : ITrainingStep<PairwiseExample>
{
    public const string AccuracyKey = "accuracy";

    private readonly PairwiseBatches _collator = new(padTokenId);

    public StepResult ForwardBackward(IReadOnlyList<PairwiseExample> examples, float gradScale, SeededRandom random)
    {
        var batch = _collator.Collate(examples);
        return Result(model.Train(batch, gradScale, random), batch);
    }

    public StepResult Evaluate(IReadOnlyList<PairwiseExample> examples)
    {
        var batch = _collator.Collate(examples);
        return Result(model.Score(batch), batch);
    }

    public bool ReportsPerplexity => false;

    private static StepResult Result(Objectives.PairScores scores, TrainingBatch batch) =>
        new(scores.Loss, batch.RealTokens, [new(AccuracyKey, scores.Accuracy)]);
}
