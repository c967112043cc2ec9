using SharpTune.Data;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.Model;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>The qwen2-small-vocab batch and reference tensors, and the comparisons the training tests share.</summary>
internal static class TrainingFixtures
{
    public static string BaseModel => TestPaths.Fixtures("qwen2-small-vocab");
    public static string LoraAdapter => TestPaths.Fixtures("lora");
    public static string RsloraAdapter => TestPaths.Fixtures("lora", "rslora");

    public static ReferenceFixture Base { get; } = new("qwen2-small-vocab");

    public static TrainingBatch Batch()
    {
        var f = Base;
        int b = f.InputIds.Length, t = f.InputIds[0].Length;
        return new TrainingBatch(b, t, f.InputIds.SelectMany(r => r).ToArray(), f.AttentionMask.SelectMany(r => r).ToArray(),
            f.Labels.SelectMany(r => r).ToArray());
    }

    public static Dictionary<string, float[]> Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Tensors.ToDictionary(t => t.Name, t => file.ReadFloat32(t.Name));
    }

    /// <summary>Asserts |actual − expected| ≤ absolute + relative·|expected| element-wise, naming the tensor and index.</summary>
    public static void AssertClose(string name, float[] expected, float[] actual, double absolute, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs((double)actual[i] - expected[i]);
            if (diff > absolute + relative * Math.Abs(expected[i]))
                Assert.Fail($"{name}[{i}]: expected {expected[i]}, got {actual[i]} (diff {diff:E3})");
        }
    }

    /// <summary>
    /// Gradients within 1e-5 relative, measured against each tensor's largest gradient: float32 sums of thousands of
    /// terms differ from torch's by about 1e-6 of the terms' size, so an element that nearly cancels cannot be held to
    /// its own magnitude (a wrong formula is off by orders of magnitude more).
    /// </summary>
    public static void AssertGradients(IReadOnlyList<Parameter> parameters, Dictionary<string, float[]> expected)
    {
        Assert.Equal(expected.Count, parameters.Count);
        foreach (var p in parameters)
        {
            Assert.True(expected.ContainsKey(p.Name), $"no reference gradient for {p.Name}");
            float[] e = expected[p.Name];
            double scale = e.Length == 0 ? 0 : e.Max(v => Math.Abs(v));
            AssertClose(p.Name, e, p.Grad, 1e-7 + 1e-5 * scale, 1e-5);
        }
    }
}

/// <summary>
/// torch.optim.AdamW over one parameter group, as the fixtures ran it: weight decay on every parameter, norms and
/// biases included. Mirrors share each parameter's values; gradients are copied in before each step.
/// </summary>
internal sealed class SingleGroupAdamW
{
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly Parameter[] _mirrors;
    private readonly SharpTune.Training.Optim.AdamW _optimizer;

    public SingleGroupAdamW(IReadOnlyList<Parameter> parameters, double weightDecay)
    {
        _parameters = parameters;
        _mirrors = parameters.Select(p => new Parameter(p.Name, p.Shape, p.Data) { WeightDecay = true }).ToArray();
        _optimizer = new SharpTune.Training.Optim.AdamW(_mirrors, weightDecay: weightDecay);
    }

    public void Step(double lr, double maxGradNorm)
    {
        for (int i = 0; i < _parameters.Count; i++) _parameters[i].Grad.CopyTo(_mirrors[i].Grad, 0);
        SharpTune.Training.Optim.GradientClipping.Clip(_mirrors, maxGradNorm);
        _optimizer.Update(lr);
    }
}
