using SharpTune.Data;

namespace SharpTune.Tests.Data;

public sealed class PackingAndCollatorTests
{
    /// <summary>An example of <paramref name="length"/> tokens whose ids all equal its length; labels are -ids.</summary>
    private static SupervisedExample Example(int length) =>
        new(Enumerable.Repeat(length, length).ToArray(), Enumerable.Repeat(1, length).ToArray(), Enumerable.Repeat(-length, length).ToArray());

    [Fact]
    public void GreedyKnapsackTakesTheLongestExampleThatStillFits()
    {
        // Lengths 5, 3, 7, 2, 4 into blocks of 10: [7, 3], [5, 4], [2] (LLaMA-Factory's greedy_knapsack on the sorted lengths).
        var blocks = SequencePacker.Pack([Example(5), Example(3), Example(7), Example(2), Example(4)], 10);

        Assert.Equal(3, blocks.Count);
        Assert.Equal([7, 7, 7, 7, 7, 7, 7, 3, 3, 3], blocks[0].InputIds);
        Assert.Equal([5, 5, 5, 5, 5, 4, 4, 4, 4], blocks[1].InputIds);
        Assert.Equal([2, 2], blocks[2].InputIds);
        Assert.Equal([-5, -5, -5, -5, -5, -4, -4, -4, -4], blocks[1].Labels);
        Assert.All(blocks, b => Assert.All(b.AttentionMask, m => Assert.Equal(1, m)));
    }

    [Fact]
    public void PackedExamplesRestartTheirPositionsAndNeatPackingNumbersThem()
    {
        var plain = SequencePacker.Pack([Example(3), Example(2)], 10).Single();
        Assert.Equal([0, 1, 2, 0, 1], plain.PositionIds!);
        Assert.Equal([1, 1, 1, 1, 1], plain.AttentionMask);

        var neat = SequencePacker.Pack([Example(3), Example(2)], 10, neat: true).Single();
        Assert.Equal([0, 1, 2, 0, 1], neat.PositionIds!);
        Assert.Equal([1, 1, 1, 2, 2], neat.AttentionMask);
    }

    [Fact]
    public void CollatorPadsPositionIdsWithZeroWhenTheExamplesCarryThem()
    {
        var block = SequencePacker.Pack([Example(2), Example(2)], 10, neat: true).Single();
        var batch = SupervisedCollator.Collate([block, new SupervisedExample([7, 8], [1, 1], [-100, 8])], padTokenId: 99);

        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 0], batch.PositionIds!);
        Assert.Equal([1, 1, 2, 2, 1, 1, 0, 0], batch.AttentionMask);
        Assert.Equal(6, batch.RealTokens);
        Assert.Null(SupervisedCollator.Collate([Example(2)], padTokenId: 0).PositionIds);
    }

    [Fact]
    public void AnExampleLongerThanTheBlockIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => SequencePacker.Pack([Example(3), Example(11)], 10));
        Assert.Equal("example 1 has 11 tokens, more than cutoff_len 10; it cannot be packed", e.Message);
    }

    [Fact]
    public void InferSeqLenFollowsLlamaFactoryBranches()
    {
        Assert.Equal((10, 20), SupervisedProcessor.InferSeqLen(10, 20, 100)); // fits
        Assert.Equal((28, 20), SupervisedProcessor.InferSeqLen(90, 20, 48)); // short target kept, source cut
        Assert.Equal((10, 38), SupervisedProcessor.InferSeqLen(10, 90, 48)); // short source kept, target cut
        Assert.Equal((24, 24), SupervisedProcessor.InferSeqLen(60, 60, 48)); // both cut in proportion: int(48 * 0.5)
        Assert.Equal((18, 29), SupervisedProcessor.InferSeqLen(40, 70, 47)); // target int(47 * (70 / 110)) = int(29.9) = 29
    }

    [Fact]
    public void CollatorPadsRightWithPadIdZeroMaskAndIgnoredLabels()
    {
        var batch = SupervisedCollator.Collate([new SupervisedExample([1, 2, 3], [1, 1, 1], [-100, 2, 3]), new SupervisedExample([4, 5, 6, 7, 8], [1, 1, 1, 1, 1], [-100, -100, 6, 7, 8])], padTokenId: 99);

        Assert.Equal((2, 5), (batch.Batch, batch.Length));
        Assert.Equal([1, 2, 3, 99, 99, 4, 5, 6, 7, 8], batch.InputIds);
        Assert.Equal([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], batch.AttentionMask);
        Assert.Equal([-100, 2, 3, -100, -100, -100, -100, 6, 7, 8], batch.Labels);
        Assert.Equal(8, batch.RealTokens);
    }
}
