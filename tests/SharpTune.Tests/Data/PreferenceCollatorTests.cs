using SharpTune.Data;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Data;

/// <summary>
/// LLaMA-Factory's PairwiseDataCollatorWithPadding (every chosen row, then every rejected row, one padded batch) and
/// KTODataCollatorWithPadding (the batch and the KL batch padded each on its own, and the tags).
/// </summary>
public sealed class PreferenceCollatorTests
{
    private const int Pad = 99;

    /// <summary>An example whose ids are <paramref name="ids"/>, the first <paramref name="promptLength"/> of them prompt (labels -100).</summary>
    private static SupervisedExample Example(int promptLength, params int[] ids) =>
        new(ids, Enumerable.Repeat(1, ids.Length).ToArray(), [.. Enumerable.Repeat(-100, promptLength), .. ids[promptLength..]]);

    [Fact]
    public void PairsBecomeChosenRowsThenRejectedRowsInOnePaddedBatch()
    {
        var first = new PairwiseExample(Example(1, 1, 2, 3), Example(1, 1, 4));
        var second = new PairwiseExample(Example(2, 5, 6, 7, 8), Example(2, 5, 6, 9, 10, 11));

        var batch = new PairwiseBatches(Pad).Collate([first, second]);

        Assert.Equal((4, 5), (batch.Batch, batch.Length));
        Assert.Equal(
        [
            1, 2, 3, Pad, Pad,
            5, 6, 7, 8, Pad,
            1, 4, Pad, Pad, Pad,
            5, 6, 9, 10, 11,
        ], batch.InputIds);
        Assert.Equal(
        [
            -100, 2, 3, -100, -100,
            -100, -100, 7, 8, -100,
            -100, 4, -100, -100, -100,
            -100, -100, 9, 10, 11,
        ], batch.Labels);
        Assert.Equal([1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1], batch.AttentionMask);
        Assert.Null(batch.Kto);
    }

    [Fact]
    public void KtoExamplesBecomeABatchAKlBatchPaddedOnItsOwnAndTheTags()
    {
        var first = new KtoExample(Example(1, 1, 2), Kl: Example(1, 1, 7, 8, 9), Desirable: true);
        var second = new KtoExample(Example(2, 3, 4, 5), Kl: Example(2, 3, 4, 2), Desirable: false);

        var batch = new KtoBatches(Pad).Collate([first, second]);

        Assert.Equal((2, 3), (batch.Batch, batch.Length));
        Assert.Equal([1, 2, Pad, 3, 4, 5], batch.InputIds);
        Assert.Equal([-100, 2, -100, -100, -100, 5], batch.Labels);
        Assert.Equal([1, 1, 0, 1, 1, 1], batch.AttentionMask);
        var kto = Assert.IsType<KtoInputs>(batch.Kto);
        Assert.Equal((2, 4), (kto.KlBatch.Batch, kto.KlBatch.Length));
        Assert.Equal([1, 7, 8, 9, 3, 4, 2, Pad], kto.KlBatch.InputIds);
        Assert.Equal([-100, 7, 8, 9, -100, -100, 2, -100], kto.KlBatch.Labels);
        Assert.Equal([1, 1, 1, 1, 1, 1, 1, 0], kto.KlBatch.AttentionMask);
        Assert.Equal([true, false], kto.Desirable);
    }
}
