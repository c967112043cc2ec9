using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Tests.Model;

/// <summary>
/// An independent, deliberately plain re-statement of the decoder (double precision, scalar loops, no cache, no
/// backend), written from transformers' modelling code. It is checked against Hugging Face's own logits on the
/// Qwen2 fixture and then serves as the reference for the variants no fixture covers (Llama, Qwen3, rope scaling).
/// </summary>
public static class NaiveDecoder
{
    /// <summary>Logits [T][V] of one unpadded sequence at positions 0..T-1.</summary>
    public static double[][] Logits(string folder, int[] ids)
    {
        var c = ModelConfig.Load(Path.Combine(folder, "config.json"));
        using var w = SafetensorsCheckpoint.OpenDirectory(folder);
        double[] W(string name) => w.ReadFloat32(name).Select(v => (double)v).ToArray();
        double[]? Optional(string name) => w.Contains(name) ? W(name) : null;
        int T = ids.Length, H = c.HiddenSize, hd = c.HeadDim;
        double[] invFreq = RopeScaling.BuildTable(c).InverseFrequencies.Select(v => (double)v).ToArray();

        double[] embed = W("model.embed_tokens.weight");
        var h = new double[T][];
        for (int t = 0; t < T; t++) h[t] = embed.AsSpan(ids[t] * H, H).ToArray();

        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var x = h.Select(row => RmsNorm(row, W(p + "input_layernorm.weight"), c.RmsNormEps)).ToArray();
            var q = x.Select(row => Linear(row, W(p + "self_attn.q_proj.weight"), Optional(p + "self_attn.q_proj.bias"), c.QueryWidth)).ToArray();
            var k = x.Select(row => Linear(row, W(p + "self_attn.k_proj.weight"), Optional(p + "self_attn.k_proj.bias"), c.KvWidth)).ToArray();
            var v = x.Select(row => Linear(row, W(p + "self_attn.v_proj.weight"), Optional(p + "self_attn.v_proj.bias"), c.KvWidth)).ToArray();
            double[]? qNorm = Optional(p + "self_attn.q_norm.weight"), kNorm = Optional(p + "self_attn.k_norm.weight");
            for (int t = 0; t < T; t++)
            {
                PerHead(q[t], hd, x => qNorm is null ? x : RmsNorm(x, qNorm, c.RmsNormEps), x => Rope(x, t, invFreq));
                PerHead(k[t], hd, x => kNorm is null ? x : RmsNorm(x, kNorm, c.RmsNormEps), x => Rope(x, t, invFreq));
            }
            var attn = new double[T][];
            int group = c.NumHeads / c.NumKvHeads;
            for (int t = 0; t < T; t++)
            {
                attn[t] = new double[c.QueryWidth];
                for (int head = 0; head < c.NumHeads; head++)
                {
                    int kvHead = head / group;
                    var scores = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < hd; i++) s += q[t][head * hd + i] * k[j][kvHead * hd + i];
                        scores[j] = s / Math.Sqrt(hd);
                    }
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int j = 0; j <= t; j++)
                        for (int i = 0; i < hd; i++)
                            attn[t][head * hd + i] += Math.Exp(scores[j] - max) / sum * v[j][kvHead * hd + i];
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Linear(attn[t], W(p + "self_attn.o_proj.weight"), Optional(p + "self_attn.o_proj.bias"), H);
                for (int i = 0; i < H; i++) h[t][i] += o[i];
                var n = RmsNorm(h[t], W(p + "post_attention_layernorm.weight"), c.RmsNormEps);
                var gate = Linear(n, W(p + "mlp.gate_proj.weight"), null, c.IntermediateSize);
                var up = Linear(n, W(p + "mlp.up_proj.weight"), null, c.IntermediateSize);
                var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                var down = Linear(act, W(p + "mlp.down_proj.weight"), null, H);
                for (int i = 0; i < H; i++) h[t][i] += down[i];
            }
        }
        double[] output = w.Contains("lm_head.weight") ? W("lm_head.weight") : embed;
        return h.Select(row => Linear(RmsNorm(row, W("model.norm.weight"), c.RmsNormEps), output, null, c.VocabSize)).ToArray();
    }

    internal static double[] RmsNorm(double[] x, double[] weight, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        return x.Select((v, i) => weight[i] * v / Math.Sqrt(ms + eps)).ToArray();
    }

    internal static double[] Linear(double[] x, double[] w, double[]? bias, int outputs)
    {
        var y = new double[outputs];
        for (int o = 0; o < outputs; o++)
        {
            double s = bias?[o] ?? 0;
            for (int i = 0; i < x.Length; i++) s += w[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /// <summary>rotate_half RoPE: x' = x·cos + rotate_half(x)·sin, rotate_half(x) = (−x₂, x₁).</summary>
    private static double[] Rope(double[] x, int position, double[] invFreq)
    {
        int half = x.Length / 2;
        var y = new double[x.Length];
        for (int i = 0; i < half; i++)
        {
            double angle = position * invFreq[i];
            y[i] = x[i] * Math.Cos(angle) - x[i + half] * Math.Sin(angle);
            y[i + half] = x[i + half] * Math.Cos(angle) + x[i] * Math.Sin(angle);
        }
        return y;
    }

    private static void PerHead(double[] row, int headDim, params Func<double[], double[]>[] steps)
    {
        for (int start = 0; start < row.Length; start += headDim)
        {
            var head = row.AsSpan(start, headDim).ToArray();
            foreach (var step in steps) head = step(head);
            head.CopyTo(row, start);
        }
    }
}
