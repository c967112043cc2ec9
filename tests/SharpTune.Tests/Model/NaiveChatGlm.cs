using System.Text.Json.Nodes;
using SharpTune.IO.Safetensors;
using static SharpTune.Tests.Model.NaiveDecoder;

namespace SharpTune.Tests.Model;

/// <summary>
/// A deliberately plain re-statement of ChatGLM3's modeling_chatglm.py (double precision, scalar loops, no cache),
/// reading config.json's keys and the checkpoint's tensors itself: query_key_value's rows split into queries, then
/// each key/value group; RoPE on interleaved pairs of the first kv_channels / 2 dimensions with base
/// 10000 · rope_ratio; dense_h_to_4h's halves as SiLU(gate) · up. Checked against the remote code's own logits on the
/// chatglm3-small fixture, it is the reference for configurations no fixture covers (other group counts, head sizes,
/// rope_ratio, bf16 weights).
/// </summary>
public static class NaiveChatGlm
{
    /// <summary>Logits [T][V] of one unpadded sequence at positions 0..T-1.</summary>
    public static double[][] Logits(string folder, int[] ids)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        int Int(string key) => config[key]!.GetValue<int>();
        int H = Int("hidden_size"), heads = Int("num_attention_heads"), hd = Int("kv_channels"), ffn = Int("ffn_hidden_size");
        int groups = config["multi_query_attention"]?.GetValue<bool>() == true ? Int("multi_query_group_num") : heads;
        double eps = config["layernorm_epsilon"]!.GetValue<double>();
        double ropeBase = 10000 * (config["rope_ratio"]?.GetValue<double>() ?? 1);
        using var w = SafetensorsCheckpoint.OpenDirectory(folder);
        double[] W(string name) => w.ReadFloat32(name).Select(v => (double)v).ToArray();
        double[]? Optional(string name) => w.Contains(name) ? W(name) : null;
        int T = ids.Length, q = heads * hd, kv = groups * hd, rot = hd / 2;

        double[] embed = W("transformer.embedding.word_embeddings.weight");
        var h = new double[T][];
        for (int t = 0; t < T; t++) h[t] = embed.AsSpan(ids[t] * H, H).ToArray();
        for (int l = 0; l < Int("num_layers"); l++)
        {
            string p = $"transformer.encoder.layers.{l}.";
            var mixed = h.Select(row => Linear(RmsNorm(row, W(p + "input_layernorm.weight"), eps),
                W(p + "self_attention.query_key_value.weight"), Optional(p + "self_attention.query_key_value.bias"), q + 2 * kv)).ToArray();
            var queries = mixed.Select(r => r[..q]).ToArray();
            var keys = mixed.Select(r => r[q..(q + kv)]).ToArray();
            var values = mixed.Select(r => r[(q + kv)..]).ToArray();
            for (int t = 0; t < T; t++)
            {
                for (int head = 0; head < heads; head++) Rope(queries[t], head * hd, rot, t, ropeBase);
                for (int g = 0; g < groups; g++) Rope(keys[t], g * hd, rot, t, ropeBase);
            }
            for (int t = 0; t < T; t++)
            {
                var context = new double[q];
                for (int head = 0; head < heads; head++)
                {
                    int g = head / (heads / groups);
                    var scores = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < hd; i++) s += queries[t][head * hd + i] * keys[j][g * hd + i];
                        scores[j] = s / Math.Sqrt(hd);
                    }
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int j = 0; j <= t; j++)
                        for (int i = 0; i < hd; i++)
                            context[head * hd + i] += Math.Exp(scores[j] - max) / sum * values[j][g * hd + i];
                }
                var o = Linear(context, W(p + "self_attention.dense.weight"), null, H);
                var middle = h[t].Select((v, i) => v + o[i]).ToArray();
                var up = Linear(RmsNorm(middle, W(p + "post_attention_layernorm.weight"), eps), W(p + "mlp.dense_h_to_4h.weight"), null, 2 * ffn);
                var act = Enumerable.Range(0, ffn).Select(i => up[i] / (1 + Math.Exp(-up[i])) * up[ffn + i]).ToArray();
                var down = Linear(act, W(p + "mlp.dense_4h_to_h.weight"), null, H);
                h[t] = middle.Select((v, i) => v + down[i]).ToArray();
            }
        }
        double[] output = W("transformer.output_layer.weight");
        int vocab = Int("padded_vocab_size");
        return h.Select(row => Linear(RmsNorm(row, W("transformer.encoder.final_layernorm.weight"), eps), output, null, vocab)).ToArray();
    }

    /// <summary>apply_rotary_pos_emb: pairs (x[2i], x[2i+1]) of the first rot dimensions turned by position·θ_i, θ_i = base^(−2i/rot).</summary>
    private static void Rope(double[] row, int start, int rot, int position, double ropeBase)
    {
        for (int i = 0; i < rot / 2; i++)
        {
            double angle = position * Math.Pow(ropeBase, -2.0 * i / rot);
            double x0 = row[start + 2 * i], x1 = row[start + 2 * i + 1];
            row[start + 2 * i] = x0 * Math.Cos(angle) - x1 * Math.Sin(angle);
            row[start + 2 * i + 1] = x1 * Math.Cos(angle) + x0 * Math.Sin(angle);
        }
    }
}
