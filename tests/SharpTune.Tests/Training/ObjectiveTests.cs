using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Tests.Training;

/// <summary>The objective seam: label log-probs from the forward, the loss as a separate object, tuners disabled.</summary>
public sealed class ObjectiveTests
{
    /// <summary>The fixture's adapter (non-zero B, trained by PEFT) continued on the fixture's base model.</summary>
    private static LoraFineTuning LoraModel() =>
        LoraFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), TrainingFixtures.LoraAdapter);

    [Fact]
    public void With_tuners_disabled_a_lora_model_gives_exactly_the_base_models_log_probs()
    {
        var batch = TrainingFixtures.Batch();
        using var baseModel = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        var expected = baseModel.LogProbs(batch);
        using var lora = LoraModel();
        Assert.Contains(lora.Adapters, a => a.B.Data.Any(v => v != 0));

        var tuned = lora.Decoder.LogProbs(batch);
        LabelLogProbs reference;
        using (lora.Decoder.DisableTuners()) reference = lora.Decoder.LogProbs(batch);
        var tunedAgain = lora.Decoder.LogProbs(batch);

        Assert.Equal(expected.PerToken, reference.PerToken);
        Assert.Equal(expected.SumPerSequence, reference.SumPerSequence);
        Assert.Equal(expected.Hidden, reference.Hidden);
        Assert.True(tuned.PerToken.Zip(expected.PerToken).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the adapter must change the log-probs");
        Assert.Equal(tuned.PerToken, tunedAgain.PerToken);
    }

    [Fact]
    public void Log_probs_sum_to_the_cross_entropy_per_sequence_and_in_total()
    {
        var batch = TrainingFixtures.Batch();
        using var lora = LoraModel();
        var logProbs = lora.Decoder.LogProbs(batch);
        var loss = lora.Evaluate(batch);

        Assert.Equal(loss.Tokens, logProbs.PerToken.Length);
        Assert.Equal(loss.Sum, -logProbs.PerToken.Sum(), 1e-9);
        Assert.All(logProbs.PerToken, p => Assert.True(p < 0, $"log-prob {p}"));
        for (int s = 0; s < batch.Batch; s++)
        {
            var tokens = Enumerable.Range(0, logProbs.Labels.Count).Where(i => logProbs.Labels.Sequences[i] == s).ToArray();
            Assert.Equal(tokens.Length, logProbs.Labels.CountPerSequence[s]);
            Assert.Equal(tokens.Sum(i => logProbs.PerToken[i]), logProbs.SumPerSequence[s], 1e-9);
        }
        Assert.Equal(batch.Batch * batch.Length * lora.Decoder.Config.HiddenSize, logProbs.Hidden.Length);
    }

    /// <summary>The gradient comes from the objective: twice the cross-entropy gives exactly twice its gradients.</summary>
    [Fact]
    public void The_objectives_upstream_gradient_drives_the_backward()
    {
        var batch = TrainingFixtures.Batch();
        using var once = LoraModel();
        using var twice = LoraModel();
        once.ForwardBackward(batch, 1f, new SeededRandom(1));
        var doubled = twice.Decoder.ForwardBackward(batch, new DoubledCrossEntropy(), 1f, new SeededRandom(1));

        Assert.Equal(2 * once.Evaluate(batch).Sum, doubled.Sum, 1e-9);
        for (int i = 0; i < once.TrainableParameters.Count; i++)
            Assert.Equal(once.TrainableParameters[i].Grad.Select(g => 2 * g), twice.TrainableParameters[i].Grad);
    }

    [Fact]
    public void Training_with_the_tuners_disabled_is_refused()
    {
        using var lora = LoraModel();
        using (lora.Decoder.DisableTuners())
        {
            var error = Assert.Throws<InvalidOperationException>(() => lora.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1)));
            Assert.Contains("disabled", error.Message);
        }
    }

    private sealed class DoubledCrossEntropy : ITrainingObjective
    {
        private readonly SupervisedCrossEntropy _inner = new();

        public void Begin(LabelTokens labels, float gradScale) => _inner.Begin(labels, 2 * gradScale);

        public float Gradient(int token, double logProb) => _inner.Gradient(token, logProb);

        public LossResult Loss(ReadOnlySpan<double> logProbs)
        {
            var loss = _inner.Loss(logProbs);
            return loss with { Sum = 2 * loss.Sum };
        }
    }
}
