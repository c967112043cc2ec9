using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

/// <summary>LoRA+ (loraplus_lr_ratio, loraplus_lr_embedding): LLaMA-Factory's groups, and the optimizers stepping each group at its rate.</summary>
public sealed class LoraPlusTests
{
    [Fact]
    public void GroupsFollowLlamaFactorysRuleByNameAndShape()
    {
        var args = new FinetuningArguments { LoraRank = 4, UseDora = true, AdditionalTarget = ["norm", "lm_head"] };
        using var model = LoraFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), args, new SeededRandom(1));
        var embeddingB = new Parameter("base_model.model.model.embed_tokens.lora_embedding_B", [48, 4], new float[48 * 4]);
        var parameters = model.TrainableParameters.Append(embeddingB).ToList();

        LoraPlus.AssignGroups(parameters, ratio: 16, embeddingLearningRate: 1e-6, learningRate: 2e-4);

        foreach (var p in parameters)
        {
            double expected = p.Name.Contains("lora_embedding_B") ? 1e-6 / 2e-4
                : p.Name.Contains("lora_B") || p.Shape.Length == 1 ? 16
                : 1;
            Assert.True(expected == p.LearningRateScale, $"{p.Name}: scale {p.LearningRateScale}, expected {expected}");
        }
        // Every kind is present: A (1), B and magnitudes and the final norm (16), lm_head (1), the embedding B.
        Assert.Contains(parameters, p => p.Name.EndsWith("lora_A.weight") && p.LearningRateScale == 1);
        Assert.Contains(parameters, p => p.Name.EndsWith("lora_magnitude_vector") && p.LearningRateScale == 16);
        Assert.Contains(parameters, p => p.Name.EndsWith("model.norm.weight") && p.LearningRateScale == 16 && !p.WeightDecay);
        Assert.Contains(parameters, p => p.Name.EndsWith("lm_head.weight") && p.LearningRateScale == 1 && p.WeightDecay);
    }

    [Fact]
    public void ARatioThatIsNotPositiveIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => LoraPlus.AssignGroups([new Parameter("x.lora_B.weight", [2], [1, 2])], 0, 1e-6, 1e-4));
        Assert.Contains("loraplus_lr_ratio must be a positive number", e.Message);
    }

    public static TheoryData<string> Optimizers => new() { OptimizerNames.AdamWTorch, OptimizerNames.AdamW8Bit };

    /// <summary>
    /// Two groups in one optimizer step exactly as two optimizers would, each over its own parameters at its own
    /// learning rate (torch's param groups); the scaled group decays by its own rate as well.
    /// </summary>
    [Theory]
    [MemberData(nameof(Optimizers))]
    public void EachGroupStepsAtItsOwnLearningRate(string optim)
    {
        const double lr = 1e-3, ratio = 8;
        var args = new SharpTune.Hparams.TrainingArguments { WeightDecay = 0.1 };
        Parameter Make(string name, int length, int seed, double scale = 1)
        {
            var random = new Random(seed);
            var p = new Parameter(name, [length], Enumerable.Range(0, length).Select(_ => (float)random.NextDouble() - 0.5f).ToArray()) { LearningRateScale = scale };
            for (int i = 0; i < length; i++) p.Grad[i] = (float)random.NextDouble() - 0.5f;
            return p;
        }
        // 5000 values: above bitsandbytes' 4096, so the 8-bit path quantises them.
        var a = Make("a.lora_A.weight", 5000, 1);
        var b = Make("a.lora_B.weight", 5000, 2, ratio);
        var aAlone = Make("a.lora_A.weight", 5000, 1);
        var bAlone = Make("a.lora_B.weight", 5000, 2);

        using (var grouped = OptimizerNames.Create(optim, [a, b], args))
        using (var first = OptimizerNames.Create(optim, [aAlone], args))
        using (var second = OptimizerNames.Create(optim, [bAlone], args))
            for (int step = 0; step < 3; step++)
            {
                grouped.Update(lr);
                first.Update(lr);
                second.Update(lr * ratio);
            }

        Assert.Equal(aAlone.Data, a.Data);
        Assert.Equal(bAlone.Data, b.Data);
    }
}
