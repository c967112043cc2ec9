using SharpTune.Data;
using SharpTune.FineTuning;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;
using SharpTune.Training.Preference;

namespace SharpTune.Tests.Training;

/// <summary>
/// Padding-free batching is exact: the decoder computing only each row's tokens up to its last real or label token
/// gives the losses and gradients of the padded computation (<see cref="DecoderModel.PaddingFree"/> false, every row
/// of the padded batch as the decoder always computed it), to 1e-6 relative, for SFT, DPO and KTO (pairwise rows), the
/// reward model's value-head loss, LoRA and full tuning, with gradient checkpointing on and off.
/// </summary>
public sealed class PaddingFreeTests
{
    /// <summary>
    /// Right-padded rows of uneven lengths (several 64-query attention blocks in the longest), each with a masked prompt
    /// over its first half and labels on the rest.
    /// </summary>
    internal static TrainingBatch UnevenBatch(int vocab, int[] lengths, int seed)
    {
        var random = new Random(seed);
        int t = lengths.Max();
        var ids = new int[lengths.Length * t];
        var mask = new int[ids.Length];
        var labels = Enumerable.Repeat(CausalLmLoss.IgnoreIndex, ids.Length).ToArray();
        for (int b = 0; b < lengths.Length; b++)
            for (int i = 0; i < lengths[b]; i++)
            {
                ids[b * t + i] = random.Next(vocab);
                mask[b * t + i] = 1;
                if (i >= lengths[b] / 2) labels[b * t + i] = ids[b * t + i];
            }
        return new TrainingBatch(lengths.Length, t, ids, mask, labels);
    }

    private static ITrainableModel Create(string tuning, string baseModel, bool checkpointing)
    {
        var decoder = DecoderModel.Load(baseModel, checkpointing);
        return tuning == "lora" ? LoraFineTuning.Resume(decoder, TrainingFixtures.LoraAdapter) : WeightsFineTuning.Full(decoder);
    }

    private sealed record Outcome(double Loss, float[][] Gradients, string[] Names);

    private static Outcome Run(Func<ITrainableModel> create, bool paddingFree, Func<ITrainableModel, double> step,
        IReadOnlyList<Parameter>? extra = null)
    {
        using var model = create();
        model.Decoder!.PaddingFree = paddingFree;
        var parameters = model.TrainableParameters.Concat(extra ?? []).ToList();
        foreach (var p in parameters) p.ZeroGrad();
        double loss = step(model);
        return new Outcome(loss, parameters.Select(p => (float[])p.Grad.Clone()).ToArray(), parameters.Select(p => p.Name).ToArray());
    }

    private static void AssertSame(Outcome padded, Outcome paddingFree)
    {
        Assert.True(double.IsFinite(padded.Loss) && padded.Loss != 0, $"degenerate loss {padded.Loss}");
        Assert.True(Math.Abs(padded.Loss - paddingFree.Loss) <= 1e-6 * Math.Abs(padded.Loss),
            $"loss: padded {padded.Loss}, padding-free {paddingFree.Loss}");
        bool anyGradient = false;
        for (int i = 0; i < padded.Gradients.Length; i++)
        {
            double scale = padded.Gradients[i].Length == 0 ? 0 : padded.Gradients[i].Max(v => Math.Abs(v));
            anyGradient |= scale > 0;
            TrainingFixtures.AssertClose(padded.Names[i], padded.Gradients[i], paddingFree.Gradients[i], 1e-6 * scale, 1e-6);
        }
        Assert.True(anyGradient, "no gradient at all");
    }

    private static void AssertPaddingFreeIsExact(Func<ITrainableModel> create, Func<ITrainableModel, double> step, IReadOnlyList<Parameter>? extra = null) =>
        AssertSame(Run(create, paddingFree: false, step, extra), Run(create, paddingFree: true, step, extra));

    [Theory]
    [InlineData("lora", false)]
    [InlineData("lora", true)]
    [InlineData("full", false)]
    [InlineData("full", true)]
    public void Sft_losses_and_gradients_equal_the_padded_batch(string tuning, bool checkpointing)
    {
        var fixture = TrainingFixtures.Batch();
        var uneven = UnevenBatch(512, [70, 23, 5, 41], seed: 1);
        foreach (var batch in new[] { fixture, uneven })
            AssertPaddingFreeIsExact(() => Create(tuning, TrainingFixtures.BaseModel, checkpointing),
                m => m.ForwardBackward(batch, 1f, new SeededRandom(0)).Mean);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sft_on_the_tiny_model_equals_the_padded_batch(bool checkpointing)
    {
        var batch = UnevenBatch(151936, [40, 9, 17], seed: 2);
        AssertPaddingFreeIsExact(() => Create("full", TestPaths.Fixtures("qwen2-tiny"), checkpointing),
            m => m.ForwardBackward(batch, 1f, new SeededRandom(0)).Mean);
    }

    [Theory]
    [InlineData("lora", "sigmoid")]
    [InlineData("lora", "ipo")]
    [InlineData("full", "sigmoid")]
    public void Dpo_losses_and_gradients_equal_the_padded_batch(string tuning, string loss)
    {
        // Chosen rows then rejected rows, all padded to the longest: the rejected answers are shorter here.
        var chosen = UnevenBatch(512, [66, 30, 12], seed: 3);
        var rejected = UnevenBatch(512, [20, 44, 7], seed: 4);
        var pairs = PairwiseStep.Concatenate(chosen, rejected, 0);
        AssertPaddingFreeIsExact(() => Create(tuning, TrainingFixtures.BaseModel, checkpointing: false), m =>
        {
            var reference = tuning == "lora"
                ? ReferenceModel.TunersDisabled(m.Decoder!)
                : ReferenceModel.Separate(WithLayout(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), m.Decoder!.PaddingFree));
            using (reference)
            {
                return new PairwiseStep(m.Decoder!, reference, PairLoss.Create(loss, 0.1), 0.5).Train(pairs, 1f, new SeededRandom(0)).Loss.Mean;
            }
        });
    }

    private static DecoderModel WithLayout(DecoderModel decoder, bool paddingFree)
    {
        decoder.PaddingFree = paddingFree;
        return decoder;
    }

    [Fact]
    public void Kto_losses_and_gradients_equal_the_padded_batch()
    {
        var batch = UnevenBatch(512, [50, 13, 31, 8], seed: 5);
        var klBatch = UnevenBatch(512, [22, 47, 9, 35], seed: 6);
        bool[] desirable = [true, false, true, false];
        AssertPaddingFreeIsExact(() => Create("lora", TrainingFixtures.BaseModel, checkpointing: true), m =>
        {
            using var reference = ReferenceModel.TunersDisabled(m.Decoder!);
            return new KtoStep(m.Decoder!, reference, 0.1, 1.0, 1.0, 0.2).Train(batch, klBatch, desirable, 1f, new SeededRandom(0)).Loss.Mean;
        });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reward_model_losses_and_gradients_equal_the_padded_batch(bool checkpointing)
    {
        var chosen = UnevenBatch(512, [60, 14], seed: 7);
        var rejected = UnevenBatch(512, [25, 39], seed: 8);
        var pairs = PairwiseStep.Concatenate(chosen, rejected, 0);
        Outcome Score(bool paddingFree)
        {
            var head = ValueHead.Load(TestPaths.Fixtures("preference", "reward_model", "value_head.safetensors"), 48);
            var loss = new PairwiseRewardLoss(head, dropout: null);
            return Run(() => Create("lora", TrainingFixtures.BaseModel, checkpointing), paddingFree, m =>
            {
                m.Decoder!.ForwardBackward(pairs, loss, objective: null, 1f, new SeededRandom(0));
                return loss.Last!.Loss;
            }, head.Parameters);
        }
        AssertSame(Score(paddingFree: false), Score(paddingFree: true));
    }
}
