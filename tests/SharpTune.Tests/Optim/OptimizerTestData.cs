using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

/// <summary>Parameters and gradients for optimizer tests, reproducible from a seed.</summary>
internal static class OptimizerTestData
{
    /// <summary>
    /// A 5000-value matrix (8-bit state: 19 full blocks and a partial one of 136), a 300-value vector below
    /// min_8bit_size (fp32 state) and a 4096-value bias exempt from weight decay (8-bit, exactly 16 blocks).
    /// </summary>
    public static Parameter[] MixedParameters(int seed)
    {
        var random = new Random(seed);
        return
        [
            new Parameter("layer.weight", [50, 100], Values(random, 5000, 0.5)),
            new Parameter("norm.weight", [300], Values(random, 300, 1.0)),
            new Parameter("layer.bias", [4096], Values(random, 4096, 0.1)) { WeightDecay = false },
        ];
    }

    public static Parameter[] Clone(IEnumerable<Parameter> parameters) =>
        parameters.Select(p => new Parameter(p.Name, p.Shape, (float[])p.Data.Clone()) { WeightDecay = p.WeightDecay }).ToArray();

    /// <summary>
    /// Fills every gradient for step <paramref name="step"/>: gaussian values whose scale changes from block to block
    /// (by up to 10^±2), so that the blocks' absmax values differ, with some exact zeros; with
    /// <paramref name="tiny"/> also some values 10^8 times smaller than their neighbours (whose moments quantise to
    /// the code of zero).
    /// </summary>
    public static void FillGradients(IReadOnlyList<Parameter> parameters, int seed, int step, bool tiny = false)
    {
        var random = new Random(seed * 1000 + step);
        foreach (var p in parameters)
            for (int i = 0; i < p.Length; i++)
            {
                double blockScale = Math.Pow(10, ((i / 256 * 7 + step) % 5) - 2);
                int kind = random.Next(50);
                p.Grad[i] = kind == 0 ? 0f : (float)(Gaussian(random) * blockScale * (tiny && kind == 1 ? 1e-8 : 1));
            }
    }

    /// <summary>Runs <paramref name="steps"/> updates with the gradients of <see cref="FillGradients"/> and a decaying learning rate.</summary>
    public static void Run(IOptimizer optimizer, int seed, int firstStep, int steps)
    {
        for (int s = firstStep; s < firstStep + steps; s++)
        {
            FillGradients(optimizer.Parameters, seed, s);
            optimizer.Update(LearningRate(s));
        }
    }

    public static double LearningRate(int step) => 1e-2 / (1 + step);

    public static AdamWHyperparameters Hyperparameters => new(0.9, 0.95, 1e-6, 0.1);

    /// <summary>Asserts the two parameter lists hold the same bits.</summary>
    public static void AssertSameWeights(IReadOnlyList<Parameter> expected, IReadOnlyList<Parameter> actual)
    {
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Data.AsSpan().SequenceEqual(actual[i].Data), $"weights of {expected[i].Name} differ");
    }

    /// <summary>Asserts the two optimizers export the same state tensors, byte for byte.</summary>
    public static void AssertSameState(IOptimizer expected, IOptimizer actual)
    {
        Assert.Equal(expected.Step, actual.Step);
        var a = expected.StateTensors;
        var b = actual.StateTensors;
        Assert.Equal(a.Select(t => (t.Name, t.DType, string.Join(",", t.Shape))), b.Select(t => (t.Name, t.DType, string.Join(",", t.Shape))));
        for (int i = 0; i < a.Count; i++)
            Assert.True(a[i].Data.Span.SequenceEqual(b[i].Data.Span), $"state {a[i].Name} differs");
    }

    private static float[] Values(Random random, int count, double scale) =>
        Enumerable.Range(0, count).Select(_ => (float)(Gaussian(random) * scale)).ToArray();

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
