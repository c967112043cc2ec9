using SharpTune.FineTuning;
using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Ppo;

namespace SharpTune.Tests.Training;

/// <summary>
/// TRL 0.9's PPOTrainer.loss on a LoRA model with a value head: the policy and value losses of a mini-batch and TRL's
/// ratio_threshold, which zeroes both when the mean ratio exp(log π − log π_old) is past it. The value loss is read
/// from the hidden states after the policy loss has seen the log-probs, so it knows the decision.
/// </summary>
public sealed class PpoLossTests
{
    private static readonly PpoSample[] Samples = [new([1, 2, 3], [4, 5]), new([6, 7], [8, 9, 10])];

    private sealed record Outcome(PpoPolicyLoss Policy, PpoValueLoss Value, float[] HeadGradient, float[] AdapterGradient);

    /// <summary>One mini-batch forward and backward with old log-probs <paramref name="shift"/> below the current ones.</summary>
    private static Outcome Run(double shift)
    {
        using var model = TrainableModels.Create(TrainingFixtures.BaseModel, new FinetuningArguments { LoraRank = 4, LoraTarget = ["all"] }, false, new SeededRandom(3), []);
        var decoder = model.Decoder!;
        var head = ValueHead.CreateNew(decoder.Config.HiddenSize, new SeededRandom(1));
        var batch = PpoTrainer.Collate(Samples, padTokenId: 0);
        double[] current = decoder.LogProbs(batch).PerToken;
        int n = current.Length;
        var policy = new PpoPolicyLoss([.. current.Select(lp => lp - shift)], [.. Enumerable.Range(0, n).Select(i => i % 2 == 0 ? 1.0 : -0.5)],
            PpoTrainer.ClipRange, PpoTrainer.RatioThreshold);
        var value = new PpoValueLoss(head, policy, new double[n], [.. Enumerable.Repeat(1.0, n)], PpoTrainer.ValueClipRange, PpoTrainer.ValueCoefficient, new SeededRandom(2));
        decoder.ForwardBackward(batch, value, policy, 1f, new SeededRandom(4));
        return new Outcome(policy, value, [.. head.Weight.Grad], [.. model.TrainableParameters.SelectMany(p => p.Grad)]);
    }

    [Fact]
    public void Within_the_ratio_threshold_both_losses_train()
    {
        var o = Run(shift: 0);
        Assert.False(o.Policy.Skipped);
        // Ratio 1 everywhere: pg_loss = −mean(A) over the 5 response tokens (A alternates 1, −0.5), nothing clipped.
        Assert.Equal(-(1 - 0.5 + 1 - 0.5 + 1) / 5, o.Policy.Loss, 6);
        Assert.Equal(0, o.Policy.ClipFraction);
        Assert.True(o.Value.Loss > 0);
        Assert.Contains(o.HeadGradient, g => g != 0);
        Assert.Contains(o.AdapterGradient, g => g != 0);
    }

    [Fact]
    public void Past_the_ratio_threshold_neither_loss_adds_a_gradient()
    {
        // exp(3) ≈ 20 > ratio_threshold 10.
        var o = Run(shift: 3);
        Assert.True(o.Policy.Skipped);
        Assert.Equal(Math.Exp(3), o.Policy.MeanRatio, 6);
        Assert.Equal((0.0, 0.0), (o.Policy.Loss, o.Value.Loss));
        Assert.All(o.HeadGradient, g => Assert.Equal(0f, g));
        Assert.All(o.AdapterGradient, g => Assert.Equal(0f, g));
    }
}
