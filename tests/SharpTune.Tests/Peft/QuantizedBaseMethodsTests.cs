using SharpTune.FineTuning;
using SharpTune.Hparams;
using SharpTune.Quantization;
using SharpTune.Training.Model;
using SharpTune.Tests.Training;
using Xunit;

namespace SharpTune.Tests.Peft;

/// <summary>
/// The methods that leave the projections frozen train on a quantised base as LoRA does in QLoRA: their own tensors get
/// gradients, the quantised weights stay quantised and untrained, and the loss is the one of a float base that holds
/// the dequantised values (the quantised product is exact up to its fp32 rounding).
/// </summary>
public sealed class QuantizedBaseMethodsTests
{
    [Theory]
    [InlineData(FinetuningType.Ia3)]
    [InlineData(FinetuningType.BitFit)]
    [InlineData(FinetuningType.Adapter)]
    public void TrainsItsOwnTensorsOnA4BitBaseAndLeavesTheProjectionsQuantized(FinetuningType method)
    {
        var args = new FinetuningArguments { FinetuningType = method };
        var quantization = new QuantizationOptions(4);
        using var model = TrainableModels.Create(TrainingFixtures.BaseModel, args, gradientCheckpointing: false, new SeededRandom(7), [], quantization);
        var loss = model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));

        using var fp32 = TrainableModels.Create(TrainingFixtures.BaseModel, args, gradientCheckpointing: false, new SeededRandom(7), []);
        var fp32Loss = fp32.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));

        Assert.True(double.IsFinite(loss.Mean));
        // 4-bit weights move the loss a little, not a lot: the same model, quantised.
        Assert.InRange(Math.Abs(loss.Mean - fp32Loss.Mean), 1e-6, 0.05 * fp32Loss.Mean);
        Assert.NotEmpty(model.TrainableParameters);
        Assert.All(model.TrainableParameters, p => Assert.Contains(p.Grad, g => g != 0));
        var decoder = Assert.IsType<DecoderModel>(model.Decoder);
        Assert.All(decoder.Linears, l => Assert.True(l.Weight.IsQuantized && l.Weight.Grad is null));
    }

    [Theory]
    [InlineData(FinetuningType.Full)]
    [InlineData(FinetuningType.Freeze)]
    public void MethodsThatTrainTheProjectionsAreRefusedOnAQuantizedBase(FinetuningType method)
    {
        var args = new FinetuningArguments { FinetuningType = method };
        var e = Assert.Throws<ArgumentException>(() => TrainableModels.CheckCombination(args, [], new QuantizationOptions(4)));
        Assert.Contains($"finetuning_type {args.MethodName} cannot use quantization_bit", e.Message);
    }
}
