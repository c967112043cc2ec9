using SharpTune.Data;

namespace SharpTune.Training.Trainer;

/// <summary>
/// Stages rm and dpo, as LLaMA-Factory's <c>PairwiseDataCollatorWithPadding</c>: one padded batch of 2N rows, rows
/// [0, N) the chosen examples and rows [N, 2N) the rejected ones in the same order (row r + N is row r's rejected
/// answer), padded as <see cref="SupervisedCollator"/> pads.
/// </summary>
public sealed class PairwiseBatches(int padTokenId) : IBatchCollator<PairwiseExample>
{
    public TrainingBatch Collate(IReadOnlyList<PairwiseExample> examples) =>
        SupervisedCollator.Collate([.. examples.Select(e => e.Chosen), .. examples.Select(e => e.Rejected)], padTokenId);
}

/// <summary>
/// Stage kto, as LLaMA-Factory's <c>KTODataCollatorWithPadding</c>: the examples padded as one batch, their KL
/// examples padded as another (<see cref="TrainingBatch.Kto"/>), and the tags.
/// </summary>
public sealed class KtoBatches(int padTokenId) : IBatchCollator<KtoExample>
{
    public TrainingBatch Collate(IReadOnlyList<KtoExample> examples)
    {
        var batch = SupervisedCollator.Collate([.. examples.Select(e => e.Example)], padTokenId);
        var kl = SupervisedCollator.Collate([.. examples.Select(e => e.Kl)], padTokenId);
        return new TrainingBatch(batch.Batch, batch.Length, batch.InputIds, batch.AttentionMask, batch.Labels)
        {
            Kto = new KtoInputs(kl, [.. examples.Select(e => e.Desirable)]),
        };
    }
}
