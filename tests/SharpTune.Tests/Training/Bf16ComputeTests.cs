using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Optim;
using Xunit.Abstractions;

namespace SharpTune.Tests.Training;

/// <summary>A test that needs a bf16 GEMM (oneDNN on a CPU with AVX512-BF16 or AMX); skipped with the reason elsewhere.</summary>
public sealed class Bf16GemmFactAttribute : FactAttribute
{
    public Bf16GemmFactAttribute()
    {
        if (Bf16ComputeMatrix.AvailableKernel is null)
            Skip = Bf16ComputeMatrix.Unavailable;
    }
}

/// <summary>A theory that needs a bf16 GEMM; skipped with the reason elsewhere.</summary>
public sealed class Bf16GemmTheoryAttribute : TheoryAttribute
{
    public Bf16GemmTheoryAttribute()
    {
        if (Bf16ComputeMatrix.AvailableKernel is null) Skip = new Bf16GemmFactAttribute().Skip;
    }
}

/// <summary>bf16: true — frozen bf16 weights multiplied on the bf16 GEMM, everything trained in fp32.</summary>
public sealed class Bf16ComputeTests(ITestOutputHelper output)
{
    private static string Bf16Model => TestPaths.Fixtures("qwen2-tiny");

    private static FinetuningArguments Lora() => new() { LoraRank = 4, LoraTarget = ["all"] };

    // The second shape rounds 150,050 activations: three chunks of the pool-parallel rounding, the last one partial.
    [Bf16GemmTheory]
    [InlineData(37, 70, 5)]
    [InlineData(16, 3001, 50)]
    public unsafe void BothProductsAreTheBf16RoundedActivationsTimesTheStoredWeights(int rows, int cols, int m)
    {
        var random = new Random(4);
        ushort[] weights = Enumerable.Range(0, rows * cols).Select(_ => BFloat16.FromSingle((float)(random.NextDouble() * 2 - 1))).ToArray();
        float[] x = Enumerable.Range(0, m * cols).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] dy = Enumerable.Range(0, m * rows).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] dxStart = Enumerable.Range(0, m * cols).Select(_ => (float)random.NextDouble()).ToArray();
        static double Round(float v) => BFloat16.ToSingle(BFloat16.FromSingle(v));
        double W(int r, int c) => BFloat16.ToSingle(weights[r * cols + c]);

        fixed (ushort* pw = weights)
        {
            var matrix = new Bf16ComputeMatrix(new WeightMatrix(pw, DType.BF16, rows, cols), Bf16ComputeMatrix.AvailableKernel!);
            var y = new float[m * rows];
            var dx = (float[])dxStart.Clone();
            matrix.MultiplyTransposed(x, m, y);
            matrix.Multiply(dy, m, dx, accumulate: true);

            double unroundedGap = 0;
            for (int i = 0; i < m; i++)
                for (int r = 0; r < rows; r++)
                {
                    double expected = 0, magnitude = 0, unrounded = 0;
                    for (int c = 0; c < cols; c++)
                    {
                        expected += Round(x[i * cols + c]) * W(r, c);
                        unrounded += x[i * cols + c] * W(r, c);
                        magnitude += Math.Abs(x[i * cols + c] * W(r, c));
                    }
                    Assert.Equal(expected, y[i * rows + r], 2e-6 * magnitude);
                    unroundedGap = Math.Max(unroundedGap, Math.Abs(unrounded - y[i * rows + r]) / magnitude);
                }
            for (int i = 0; i < m; i++)
                for (int c = 0; c < cols; c++)
                {
                    double expected = dxStart[i * cols + c], magnitude = Math.Abs(expected);
                    for (int r = 0; r < rows; r++)
                    {
                        expected += Round(dy[i * rows + r]) * W(r, c);
                        magnitude += Math.Abs(dy[i * rows + r] * W(r, c));
                    }
                    Assert.Equal(expected, dx[i * cols + c], 2e-6 * magnitude);
                }
            // The activations really are rounded: the fp32 product differs by far more than accumulation error.
            Assert.True(unroundedGap > 1e-4, $"largest relative gap to the unrounded product {unroundedGap}");
        }
    }

    [Bf16GemmFact]
    public void ABf16LoraRunStaysCloseToTheFp32Run()
    {
        double[] Run(bool bf16)
        {
            using var model = (LoraFineTuning)TrainableModels.Create(Bf16Model, Lora(), false, new SeededRandom(3), [], bf16Compute: bf16);
            Assert.All(model.Decoder.Linears, l => Assert.IsType(bf16 ? typeof(Bf16ComputeMatrix) : typeof(StoredMatrix), l.Weight.Frozen));
            Assert.IsType(bf16 ? typeof(Bf16ComputeMatrix) : typeof(StoredMatrix), model.Decoder.LmHead.Frozen);
            using var optimizer = OptimizerNames.Create(OptimizerNames.AdamWTorch, model.TrainableParameters, new TrainingArguments());
            var losses = new List<double>();
            for (int step = 0; step < 8; step++)
            {
                foreach (var p in model.TrainableParameters) p.ZeroGrad();
                losses.Add(model.ForwardBackward(CompactWeightsTests.TinyBatch(), 1f, new SeededRandom(5)).Mean);
                optimizer.Update(5e-3);
            }
            return [.. losses];
        }

        double[] fp32 = Run(bf16: false);
        double[] bf16 = Run(bf16: true);
        output.WriteLine($"fp32 losses: {string.Join(", ", fp32.Select(l => l.ToString("F5")))}");
        output.WriteLine($"bf16 losses: {string.Join(", ", bf16.Select(l => l.ToString("F5")))}");

        Assert.True(fp32[^1] < fp32[0] - 0.1, "the run learns");
        for (int step = 0; step < fp32.Length; step++)
            Assert.Equal(fp32[step], bf16[step], 0.002 * fp32[step]);
        Assert.NotEqual(fp32[0], bf16[0]);
    }

    [Bf16GemmFact]
    public void Bf16ComputeLeavesFloat32WeightsInFp32()
    {
        using var model = (LoraFineTuning)TrainableModels.Create(TestPaths.Fixtures("qwen2-small-vocab"), Lora(), false, new SeededRandom(3), [], bf16Compute: true);

        Assert.All(model.Decoder.Linears, l => Assert.IsType<StoredMatrix>(l.Weight.Frozen));
    }
}
