using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.FineTuning;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Training;

/// <summary>
/// Packed blocks in the decoder. neat_packing (block-diagonal attention, positions restarting per example) gives each
/// example's loss and gradients unpacked, to 1e-6 relative; packing without it attends across the block at the
/// restarted positions, which the generation forward (explicit positions, a KV cache) computes independently.
/// </summary>
public sealed class PackedTrainingTests
{
    private static List<SupervisedExample> Examples(int[] lengths, int seed)
    {
        var batch = PaddingFreeTests.UnevenBatch(512, lengths, seed);
        return Enumerable.Range(0, lengths.Length).Select(b =>
        {
            var range = new Range(b * batch.Length, b * batch.Length + lengths[b]);
            return new SupervisedExample(batch.InputIds[range], batch.AttentionMask[range], batch.Labels[range]);
        }).ToList();
    }

    [Theory]
    [InlineData("lora", false)]
    [InlineData("lora", true)]
    [InlineData("full", false)]
    [InlineData("full", true)]
    public void Neat_packed_blocks_equal_the_same_examples_unpacked(string tuning, bool checkpointing)
    {
        // Prompts are masked, so no label crosses an example boundary and both batches hold the same label tokens.
        var examples = Examples([70, 23, 5, 41, 17, 60], seed: 9);
        var blocks = SequencePacker.Pack(examples, 100, neat: true);
        Assert.True(blocks.Count < examples.Count, "nothing was packed");
        var packed = SupervisedCollator.Collate(blocks, padTokenId: 0);
        var unpacked = SupervisedCollator.Collate(examples, padTokenId: 0);

        (double Loss, float[][] Gradients) Run(TrainingBatch batch)
        {
            var decoder = DecoderModel.Load(TrainingFixtures.BaseModel, checkpointing);
            using ITrainableModel model = tuning == "lora" ? LoraFineTuning.Resume(decoder, TrainingFixtures.LoraAdapter) : WeightsFineTuning.Full(decoder);
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            double loss = model.ForwardBackward(batch, 1f, new SeededRandom(0)).Mean;
            return (loss, model.TrainableParameters.Select(p => (float[])p.Grad.Clone()).ToArray());
        }
        var (expectedLoss, expected) = Run(unpacked);
        var (loss, actual) = Run(packed);

        Assert.True(Math.Abs(expectedLoss - loss) <= 1e-6 * expectedLoss, $"loss: unpacked {expectedLoss}, packed {loss}");
        for (int i = 0; i < expected.Length; i++)
        {
            double scale = expected[i].Max(v => Math.Abs(v));
            TrainingFixtures.AssertClose($"parameter {i}", expected[i], actual[i], 1e-6 * scale, 1e-6);
        }
    }

    [Fact]
    public void Packing_without_neat_packing_attends_across_the_block_at_restarted_positions()
    {
        var examples = Examples([30, 12, 21], seed: 10);
        var block = SequencePacker.Pack(examples, 100).Single();
        Assert.All(block.AttentionMask, m => Assert.Equal(1, m));
        var batch = SupervisedCollator.Collate([block], padTokenId: 0);
        using var model = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        var logits = model.Logits(batch);

        int t = block.Length, v = model.Config.VocabSize;
        var backend = model.Backend;
        var hidden = backend.Allocate(t, model.Config.HiddenSize);
        model.Forward(block.InputIds, block.PositionIds, Enumerable.Repeat((byte)1, t).ToArray(), 1, t, model.CreateCache(1, t), hidden);
        var expectedOutput = backend.Allocate(t, v);
        model.Logits(hidden, t, expectedOutput);
        var expected = backend.ToHost(expectedOutput);
        double scale = expected.Max(Math.Abs);
        TrainingFixtures.AssertClose("logits", expected, logits, 1e-5 * scale, 1e-5);

        // The same block at positions 0..t-1 is another computation: the restarted positions are what was used.
        var running = backend.Allocate(t, model.Config.HiddenSize);
        model.Forward(block.InputIds, Enumerable.Range(0, t).ToArray(), Enumerable.Repeat((byte)1, t).ToArray(), 1, t, model.CreateCache(1, t), running);
        var runningLogits = backend.Allocate(t, v);
        model.Logits(running, t, runningLogits);
        Assert.True(backend.ToHost(runningLogits).Zip(logits).Max(p => Math.Abs(p.First - p.Second)) > 1e-3 * scale);
    }

    [Fact]
    public void A_packed_row_must_number_its_examples_in_order()
    {
        var batch = new TrainingBatch(1, 6, [1, 2, 3, 4, 5, 6], [1, 1, 3, 3, 0, 0], [-100, 2, 3, 4, 5, -100]);
        using var model = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        var e = Assert.Throws<ArgumentException>(() => model.Evaluate(batch));
        Assert.Equal("row 0 of the batch: attention_mask value 3 at position 2 after example 1; a packed row numbers its examples 1, 2, 3, … " +
            "in order, with padding (0) only after the last one", e.Message);
    }
}
