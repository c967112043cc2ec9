using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Training;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

public class AdamW8BitTests
{
    private const int Seed = 3;

    /// <summary>
    /// The 8-bit AdamW step written out independently for one tensor: dequantise each block of 256
    /// (map[code] · absmax), torch's AdamW update in fp32 (decay, moments, bias-corrected step), then requantise
    /// (absmax = max |moment| of the block, nearest code of moment · (1 / absmax) by a full search of the map,
    /// and bitsandbytes' rule that a first-moment code keeps the moment's sign bit).
    /// </summary>
    private sealed class Reference(Parameter p, AdamWHyperparameters h)
    {
        private static readonly float[] Signed = DynamicMap.Signed();
        private static readonly float[] Unsigned = DynamicMap.Unsigned();
        private readonly int _blocks = (p.Length + 255) / 256;

        public float[] Weights { get; } = (float[])p.Data.Clone();
        public byte[] CodesM { get; } = new byte[p.Length];
        public byte[] CodesV { get; } = new byte[p.Length];
        public float[] AbsmaxM { get; } = new float[(p.Length + 255) / 256];
        public float[] AbsmaxV { get; } = new float[(p.Length + 255) / 256];

        public void Step(float[] grad, double lr, long t)
        {
            float negStepSize = (float)(-lr / (1 - Math.Pow(h.Beta1, t)));
            float bc2 = (float)Math.Sqrt(1 - Math.Pow(h.Beta2, t));
            float decay = p.WeightDecay ? (float)(1 - lr * h.WeightDecay) : 1f;
            for (int b = 0; b < _blocks; b++)
            {
                int start = b * 256, end = Math.Min(p.Length, start + 256);
                var m = new float[end - start];
                var v = new float[end - start];
                for (int i = start; i < end; i++)
                {
                    float mi = Signed[CodesM[i]] * AbsmaxM[b];
                    float vi = Unsigned[CodesV[i]] * AbsmaxV[b];
                    float g = grad[i];
                    mi = mi * (float)h.Beta1 + (float)(1 - h.Beta1) * g;
                    vi = vi * (float)h.Beta2 + (float)(1 - h.Beta2) * g * g;
                    float denom = MathF.Sqrt(vi) / bc2 + (float)h.Epsilon;
                    Weights[i] = Weights[i] * decay + negStepSize * mi / denom;
                    m[i - start] = mi;
                    v[i - start] = vi;
                }
                AbsmaxM[b] = m.Max(MathF.Abs);
                AbsmaxV[b] = v.Max(MathF.Abs);
                for (int i = start; i < end; i++)
                {
                    float mi = m[i - start], vi = v[i - start];
                    int code = Nearest(Signed, mi * (1f / AbsmaxM[b]));
                    if (float.IsNegative(Signed[code]) != float.IsNegative(mi)) code += mi > 0 ? 1 : -1;
                    CodesM[i] = (byte)code;
                    CodesV[i] = (byte)Nearest(Unsigned, vi * (1f / AbsmaxV[b]));
                }
            }
        }

        private static int Nearest(float[] map, float x)
        {
            int best = 0;
            for (int k = 1; k < map.Length; k++)
                if (Math.Abs(map[k] - x) < Math.Abs(map[best] - x)) best = k;
            return best;
        }
    }

    private static byte[] Bytes(IOptimizer optimizer, string name) => optimizer.StateTensors.Single(t => t.Name == name).Data.ToArray();

    private static float[] Floats(IOptimizer optimizer, string name) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Bytes(optimizer, name)).ToArray();

    [Fact]
    public void Step_MatchesTheHandWrittenAlgorithm_CodesScalesAndWeights()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        var h = OptimizerTestData.Hyperparameters;
        var references = new[] { new Reference(parameters[0], h), new Reference(parameters[2], h) };
        using var optimizer = new AdamW8Bit(parameters, h);
        Assert.True(optimizer.IsQuantized(0));
        Assert.False(optimizer.IsQuantized(1));
        Assert.True(optimizer.IsQuantized(2));

        for (int s = 0; s < 4; s++)
        {
            OptimizerTestData.FillGradients(parameters, Seed, s, tiny: true);
            references[0].Step(parameters[0].Grad, OptimizerTestData.LearningRate(s), s + 1);
            references[1].Step(parameters[2].Grad, OptimizerTestData.LearningRate(s), s + 1);
            optimizer.Update(OptimizerTestData.LearningRate(s));
            // After the first step the moments of the tiny gradients are 10^-8 of their block's absmax: the nearest
            // code is zero, and the sign rule moves the negative ones to the code just below it (126).
            if (s == 0) Assert.Contains((byte)126, Bytes(optimizer, "exp_avg.layer.weight"));
        }

        foreach (var (reference, p) in new[] { (references[0], parameters[0]), (references[1], parameters[2]) })
        {
            Assert.Equal(reference.CodesM, Bytes(optimizer, "exp_avg." + p.Name));
            Assert.Equal(reference.AbsmaxM, Floats(optimizer, "exp_avg_absmax." + p.Name));
            Assert.Equal(reference.CodesV, Bytes(optimizer, "exp_avg_sq." + p.Name));
            Assert.Equal(reference.AbsmaxV, Floats(optimizer, "exp_avg_sq_absmax." + p.Name));
            Assert.True(reference.Weights.AsSpan().SequenceEqual(p.Data), $"weights of {p.Name} differ from the reference");
        }
    }

    [Fact]
    public void SmallTensors_KeepFp32Moments_AndStepExactlyAsAdamWTorch()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        var mirror = OptimizerTestData.Clone(parameters);
        using var eightBit = new AdamW8Bit(parameters, OptimizerTestData.Hyperparameters);
        using var torch = new AdamW(mirror, OptimizerTestData.Hyperparameters, paged: false);
        OptimizerTestData.Run(eightBit, Seed, 0, 3);
        OptimizerTestData.Run(torch, Seed, 0, 3);

        Assert.Equal(DType.F32, eightBit.StateTensors.Single(t => t.Name == "exp_avg.norm.weight").DType);
        Assert.True(parameters[1].Data.AsSpan().SequenceEqual(mirror[1].Data));
        Assert.Equal(Bytes(torch, "exp_avg_sq.norm.weight"), Bytes(eightBit, "exp_avg_sq.norm.weight"));
        // The 8-bit tensors follow the same trajectory closely but not exactly: three steps move the weights by
        // about 0.013, the quantised moments change that by about 1e-5 (at most 5e-3).
        var deviation = Enumerable.Range(0, parameters[0].Length).Select(i => Math.Abs(parameters[0].Data[i] - mirror[0].Data[i])).Order().ToArray();
        Assert.True(deviation[^1] > 0, "the 8-bit tensor moved exactly as with fp32 moments");
        Assert.True(deviation[deviation.Length / 2] < 1e-4, $"median deviation {deviation[deviation.Length / 2]}");
        Assert.True(deviation[^1] < 5e-3, $"largest deviation {deviation[^1]}");
    }

    [Fact]
    public void DequantisedMoments_TrackTheFp32Moments()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        var mirror = OptimizerTestData.Clone(parameters);
        using var eightBit = new AdamW8Bit(parameters, OptimizerTestData.Hyperparameters);
        using var torch = new AdamW(mirror, OptimizerTestData.Hyperparameters, paged: false);
        OptimizerTestData.Run(eightBit, Seed, 0, 5);
        OptimizerTestData.Run(torch, Seed, 0, 5);

        var (m, v) = eightBit.Moments(0);
        var exactM = torch.ExpAvg(0).ToArray();
        var exactV = torch.ExpAvgSq(0).ToArray();
        // Per block, the dynamic map keeps about two significant digits of the values near the absmax.
        for (int b = 0; b < 20; b++)
        {
            var block = Enumerable.Range(b * 256, Math.Min(256, 5000 - b * 256)).ToArray();
            double maxM = block.Max(i => Math.Abs(exactM[i])), maxV = block.Max(i => exactV[i]);
            Assert.All(block, i => Assert.True(Math.Abs(m[i] - exactM[i]) < 0.05 * maxM, $"m[{i}] = {m[i]}, fp32 {exactM[i]}"));
            Assert.All(block, i => Assert.True(Math.Abs(v[i] - exactV[i]) < 0.05 * maxV, $"v[{i}] = {v[i]}, fp32 {exactV[i]}"));
        }
    }

    [Fact]
    public void StateBytes_AreAboutAQuarterOfFp32AdamW_ForLargeTensors()
    {
        Parameter[] Large() => [new Parameter("big", [1024, 1024], new float[1 << 20])];
        using var eightBit = new AdamW8Bit(Large(), new AdamWHyperparameters());
        using var torch = new AdamW(Large());
        // Two moments: one byte per value plus one fp32 absmax per 256 values, against 2 × 4 bytes per value.
        Assert.Equal(2L * (1 << 20) + 2L * 4 * 4096, eightBit.StateBytes);
        Assert.Equal(8L * (1 << 20), torch.StateBytes);
        Assert.InRange((double)eightBit.StateBytes / torch.StateBytes, 0.25, 0.26);

        using var small = new AdamW8Bit([new Parameter("small", [4095], new float[4095])], new AdamWHyperparameters());
        Assert.Equal(8L * 4095, small.StateBytes);
    }

    [Fact]
    public void ZeroGradients_OnZeroState_LeaveTheStateAtZero()
    {
        var p = new Parameter("w", [4096], Enumerable.Range(0, 4096).Select(i => i * 1e-3f).ToArray()) { WeightDecay = false };
        var before = (float[])p.Data.Clone();
        using var optimizer = new AdamW8Bit([p], new AdamWHyperparameters());
        optimizer.Update(1e-3);
        var (m, v) = optimizer.Moments(0);
        Assert.All(m, x => Assert.Equal(0f, Math.Abs(x)));
        Assert.All(v, x => Assert.Equal(0f, x));
        Assert.Equal(before, p.Data);
    }
}
