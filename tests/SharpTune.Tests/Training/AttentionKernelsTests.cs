using SharpTune.Engine;

namespace SharpTune.Tests.Training;

/// <summary>
/// The training attention (query blocks that skip the causal upper triangle, vectorised softmax rows) against a
/// plain double-precision evaluation of transformers' eager attention and its gradient, on sequences long enough
/// for several query blocks and with every kind of mask: none, right padding, left padding (queries that see no
/// key attend uniformly to all keys, as HF's float32.min mask makes them) and a masked key in mid-sequence.
/// </summary>
public class AttentionKernelsTests
{
    private const int Time = 150, Heads = 4, KvHeads = 2, HeadDim = 8;

    private static int[] Masks()
    {
        var mask = new int[4 * Time];
        for (int b = 0; b < 4; b++)
            for (int j = 0; j < Time; j++)
                mask[b * Time + j] = b switch
                {
                    1 => j < Time - 30 ? 1 : 0,
                    2 => j < 70 ? 0 : 1,
                    3 => j == 100 || j == 3 ? 0 : 1,
                    _ => 1,
                };
        return mask;
    }

    [Fact]
    public void Forward_and_backward_match_eager_attention_over_several_query_blocks()
    {
        var s = new AttentionShape(4, Time, Heads, KvHeads, HeadDim);
        int rows = s.Batch * Time;
        var random = new Random(7);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        float[] q = Random(rows * s.QueryWidth), k = Random(rows * s.KvWidth), v = Random(rows * s.KvWidth);
        float[] dOutput = Random(rows * s.QueryWidth);
        int[] mask = Masks();

        var output = new float[rows * s.QueryWidth];
        var logSumExp = new float[s.Batch * Heads * Time];
        var sequences = AttentionSequences.Padded(s.Batch, Time, mask);
        AttentionKernels.Forward(s, sequences, q, k, v, output, logSumExp);
        float[] dq = new float[rows * s.QueryWidth], dk = new float[rows * s.KvWidth], dv = new float[rows * s.KvWidth];
        // Scratch starts dirty: the kernel must not rely on it being zero.
        float[] keyScratch = Enumerable.Repeat(9f, rows * s.QueryWidth).ToArray(), valueScratch = (float[])keyScratch.Clone();
        AttentionKernels.Backward(s, sequences, q, k, v, output, logSumExp, dOutput, dq, dk, dv, keyScratch, valueScratch);

        var (refOut, refDq, refDk, refDv) = Reference(s, q, k, v, mask, dOutput);
        AssertClose(refOut, output, "output");
        AssertClose(refDq, dq, "dq");
        AssertClose(refDk, dk, "dk");
        AssertClose(refDv, dv, "dv");
    }

    /// <summary>
    /// Padding-free layout: sequences of uneven lengths back to back, each attending only within itself, give what
    /// the same sequences give right-padded (the reference at their real rows, padding queries carrying no gradient).
    /// </summary>
    [Fact]
    public void Sequences_back_to_back_match_the_same_sequences_right_padded()
    {
        int[] lengths = [Time, 37, 64, 1, 100];
        var s = new AttentionShape(lengths.Length, Time, Heads, KvHeads, HeadDim);
        int padded = s.Batch * Time, rows = lengths.Sum();
        var random = new Random(11);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        float[] q = Random(padded * s.QueryWidth), k = Random(padded * s.KvWidth), v = Random(padded * s.KvWidth);
        float[] dOutput = Random(padded * s.QueryWidth);
        var mask = new int[padded];
        for (int b = 0; b < s.Batch; b++)
            for (int j = 0; j < Time; j++)
                if (j < lengths[b]) mask[b * Time + j] = 1;
                else Array.Clear(dOutput, (b * Time + j) * s.QueryWidth, s.QueryWidth);

        var starts = new int[s.Batch];
        for (int b = 1; b < s.Batch; b++) starts[b] = starts[b - 1] + lengths[b - 1];
        float[] Pack(float[] values, int width)
        {
            var packed = new float[rows * width];
            for (int b = 0; b < s.Batch; b++) Array.Copy(values, b * Time * width, packed, starts[b] * width, lengths[b] * width);
            return packed;
        }
        double[] RealRows(double[] values, int width)
        {
            var real = new double[rows * width];
            for (int b = 0; b < s.Batch; b++) Array.Copy(values, b * Time * width, real, starts[b] * width, lengths[b] * width);
            return real;
        }
        var sequences = new AttentionSequences(starts, lengths, Enumerable.Repeat(1, rows).ToArray());
        float[] pq = Pack(q, s.QueryWidth), pk = Pack(k, s.KvWidth), pv = Pack(v, s.KvWidth), pdo = Pack(dOutput, s.QueryWidth);
        var output = new float[rows * s.QueryWidth];
        var logSumExp = new float[rows * Heads];
        AttentionKernels.Forward(s, sequences, pq, pk, pv, output, logSumExp);
        float[] dq = new float[rows * s.QueryWidth], dk = new float[rows * s.KvWidth], dv = new float[rows * s.KvWidth];
        float[] keyScratch = new float[rows * s.QueryWidth], valueScratch = new float[rows * s.QueryWidth];
        AttentionKernels.Backward(s, sequences, pq, pk, pv, output, logSumExp, pdo, dq, dk, dv, keyScratch, valueScratch);

        var (refOut, refDq, refDk, refDv) = Reference(s, q, k, v, mask, dOutput);
        AssertClose(RealRows(refOut, s.QueryWidth), output, "output");
        AssertClose(RealRows(refDq, s.QueryWidth), dq, "dq");
        AssertClose(RealRows(refDk, s.KvWidth), dk, "dk");
        AssertClose(RealRows(refDv, s.KvWidth), dv, "dv");
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        double scale = expected.Max(Math.Abs);
        Assert.True(scale > 0.1, $"{what} is degenerate");
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 2e-5 * scale, $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    private static (double[] Out, double[] Dq, double[] Dk, double[] Dv) Reference(AttentionShape s, float[] q, float[] k, float[] v,
        int[] mask, float[] dOutput)
    {
        int t = s.Time, d = s.HeadDim, rows = s.Batch * t;
        double scale = 1.0 / Math.Sqrt(d);
        var output = new double[rows * s.QueryWidth];
        var dq = new double[rows * s.QueryWidth];
        var dk = new double[rows * s.KvWidth];
        var dv = new double[rows * s.KvWidth];
        double Q(int b, int i, int h, int c) => q[(b * t + i) * s.QueryWidth + h * d + c];
        double K(int b, int j, int g, int c) => k[(b * t + j) * s.KvWidth + g * d + c];
        double V(int b, int j, int g, int c) => v[(b * t + j) * s.KvWidth + g * d + c];
        double DO(int b, int i, int h, int c) => dOutput[(b * t + i) * s.QueryWidth + h * d + c];
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                int g = h / s.Group;
                for (int i = 0; i < t; i++)
                {
                    var p = new double[t];
                    bool any = Enumerable.Range(0, i + 1).Any(j => mask[b * t + j] == 1);
                    if (!any)
                        Array.Fill(p, 1.0 / t);
                    else
                    {
                        var scores = new double[t];
                        double max = double.NegativeInfinity;
                        for (int j = 0; j <= i; j++)
                        {
                            if (mask[b * t + j] == 0) continue;
                            for (int c = 0; c < d; c++) scores[j] += Q(b, i, h, c) * K(b, j, g, c);
                            scores[j] *= scale;
                            max = Math.Max(max, scores[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j <= i; j++)
                            if (mask[b * t + j] == 1) sum += p[j] = Math.Exp(scores[j] - max);
                        for (int j = 0; j <= i; j++) p[j] /= sum;
                    }
                    var dp = new double[t];
                    double rowDot = 0;
                    for (int j = 0; j < t; j++)
                    {
                        for (int c = 0; c < d; c++)
                        {
                            output[(b * t + i) * s.QueryWidth + h * d + c] += p[j] * V(b, j, g, c);
                            dp[j] += DO(b, i, h, c) * V(b, j, g, c);
                        }
                        rowDot += p[j] * dp[j];
                    }
                    for (int j = 0; j < t; j++)
                    {
                        double ds = p[j] * (dp[j] - rowDot);
                        for (int c = 0; c < d; c++)
                        {
                            dq[(b * t + i) * s.QueryWidth + h * d + c] += scale * ds * K(b, j, g, c);
                            dk[(b * t + j) * s.KvWidth + g * d + c] += scale * ds * Q(b, i, h, c);
                            dv[(b * t + j) * s.KvWidth + g * d + c] += p[j] * DO(b, i, h, c);
                        }
                    }
                }
            }
        return (output, dq, dk, dv);
    }
}
