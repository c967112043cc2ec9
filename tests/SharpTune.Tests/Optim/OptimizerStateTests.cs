using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.IO;
using SharpTune.Training;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

public class OptimizerStateTests
{
    private const int Seed = 5;

    private static IOptimizer Create(string name, IReadOnlyList<Parameter> parameters) =>
        OptimizerNames.Create(name, parameters, new SharpTune.Hparams.TrainingArguments { AdamBeta1 = 0.9, AdamBeta2 = 0.95, AdamEpsilon = 1e-6, WeightDecay = 0.1 });

    /// <summary>
    /// Saves the state after two steps the way checkpoints do, restores it into a fresh optimizer over a copy of the
    /// weights (paged into unpaged and back, which share the format), and checks both continue identically.
    /// </summary>
    [Theory]
    [InlineData("adamw_torch", "paged_adamw_32bit")]
    [InlineData("paged_adamw_32bit", "adamw_torch")]
    [InlineData("adamw_8bit", "paged_adamw_8bit")]
    [InlineData("paged_adamw_8bit", "adamw_8bit")]
    public void SavedState_RestoresExactly_AndTrainingContinuesBitForBit(string saved, string restored)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "optimizer.safetensors");
        var parameters = OptimizerTestData.MixedParameters(Seed);
        using var original = Create(saved, parameters);
        OptimizerTestData.Run(original, Seed, 0, 2);
        SafetensorsWriter.Write(path, original.StateTensors.Select(t => (t.Name, t.DType, t.Shape, t.Data)));

        var copy = OptimizerTestData.Clone(parameters);
        using var resumed = Create(restored, copy);
        Assert.Equal(original.StateFormat, resumed.StateFormat);
        using (var file = SafetensorsFile.Open(path))
            resumed.Restore(original.Step, (tensor, destination) => file.Bytes(tensor.Name).CopyTo(destination));
        OptimizerTestData.AssertSameState(original, resumed);

        OptimizerTestData.Run(original, Seed, 2, 3);
        OptimizerTestData.Run(resumed, Seed, 2, 3);
        OptimizerTestData.AssertSameWeights(parameters, copy);
        OptimizerTestData.AssertSameState(original, resumed);
    }

    [Fact]
    public void StateTensors_NameEveryMomentAfterItsParameter()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        using var eightBit = Create("adamw_8bit", parameters);
        Assert.Equal(
        [
            "exp_avg.layer.weight U8 [50,100]", "exp_avg_absmax.layer.weight F32 [20]",
            "exp_avg_sq.layer.weight U8 [50,100]", "exp_avg_sq_absmax.layer.weight F32 [20]",
            "exp_avg.norm.weight F32 [300]", "exp_avg_sq.norm.weight F32 [300]",
            "exp_avg.layer.bias U8 [4096]", "exp_avg_absmax.layer.bias F32 [16]",
            "exp_avg_sq.layer.bias U8 [4096]", "exp_avg_sq_absmax.layer.bias F32 [16]",
        ], eightBit.StateTensors.Select(t => $"{t.Name} {t.DType} [{string.Join(",", t.Shape)}]"));

        using var torch = Create("adamw_torch", parameters);
        Assert.Equal(["exp_avg.layer.weight", "exp_avg_sq.layer.weight", "exp_avg.norm.weight", "exp_avg_sq.norm.weight", "exp_avg.layer.bias", "exp_avg_sq.layer.bias"],
            torch.StateTensors.Select(t => t.Name));
    }

    [Fact]
    public void UnknownOptimizer_IsRefusedWithTheSupportedNames()
    {
        var e = Assert.Throws<ArgumentException>(() => Create("adafactor", OptimizerTestData.MixedParameters(Seed)));
        Assert.Equal("optim 'adafactor' is not supported (supported: adamw_torch, adamw_8bit, paged_adamw_32bit, paged_adamw_8bit)", e.Message);
    }
}
