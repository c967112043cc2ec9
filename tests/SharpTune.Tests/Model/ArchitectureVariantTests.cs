using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Model;

/// <summary>
/// Llama and Qwen3 run through the same decoder as Qwen2. No Hugging Face fixture covers them, so they are checked
/// against <see cref="NaiveDecoder"/>, which is itself first checked against transformers' Qwen2 logits.
/// </summary>
public sealed class ArchitectureVariantTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-variant-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void AssertMatchesNaive(string folder, int[] ids, double tolerance)
    {
        using var model = DecoderModel.LoadForGeneration(folder);
        var (_, logits) = model.Evaluate([ids], [ids.Select(_ => 1).ToArray()]);
        double[][] expected = NaiveDecoder.Logits(folder, ids);
        int vocab = model.Config.VocabSize;
        for (int t = 0; t < ids.Length; t++)
            for (int i = 0; i < vocab; i++)
            {
                double e = expected[t][i], a = logits[t * vocab + i];
                Assert.True(Math.Abs(e - a) <= tolerance * (1 + Math.Abs(e)), $"logits[{t},{i}]: naive {e}, decoder {a}");
            }
    }

    [Fact]
    public void NaiveDecoderReproducesTransformersOnQwen2()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        float[] reference = fx.ForwardTensor("logits");
        int[] ids = fx.InputIds[0];
        double[][] naive = NaiveDecoder.Logits(fx.Directory, ids);
        for (int t = 0; t < ids.Length; t++)
            for (int i = 0; i < 512; i++)
                Assert.True(Math.Abs(naive[t][i] - reference[t * 512 + i]) <= 1e-4, $"logits[{t},{i}]");
    }

    private string WriteModel(string name, JsonObject config, Func<string, bool> include, int hiddenSize, int headDim, int heads, int kvHeads) =>
        WriteModel(_dir, name, config, include, hiddenSize, headDim, heads, kvHeads);

    /// <summary>Writes a small random model folder of the given architecture with seeded weights, stored as <paramref name="dtype"/>.</summary>
    internal static string WriteModel(string dir, string name, JsonObject config, Func<string, bool> include, int hiddenSize, int headDim, int heads, int kvHeads,
        DType dtype = DType.F32)
    {
        string folder = Path.Combine(dir, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var random = new Random(11);
        var tensors = new List<(string, long[], float[])>();
        void Add(string tensor, long[] shape, Func<float> value)
        {
            if (!include(tensor)) return;
            long n = shape.Aggregate(1L, (a, b) => a * b);
            tensors.Add((tensor, shape, Enumerable.Range(0, (int)n).Select(_ => value()).ToArray()));
        }
        float Normal() => (float)(0.2 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        float NearOne() => 1 + 0.1f * Normal();
        int vocab = 96, inter = 40, q = heads * headDim, kv = kvHeads * headDim;
        Add("model.embed_tokens.weight", [vocab, hiddenSize], Normal);
        for (int l = 0; l < 2; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", [hiddenSize], NearOne);
            Add(p + "self_attn.q_proj.weight", [q, hiddenSize], Normal);
            Add(p + "self_attn.k_proj.weight", [kv, hiddenSize], Normal);
            Add(p + "self_attn.v_proj.weight", [kv, hiddenSize], Normal);
            Add(p + "self_attn.o_proj.weight", [hiddenSize, q], Normal);
            Add(p + "self_attn.q_proj.bias", [q], Normal);
            Add(p + "self_attn.k_proj.bias", [kv], Normal);
            Add(p + "self_attn.v_proj.bias", [kv], Normal);
            Add(p + "self_attn.o_proj.bias", [hiddenSize], Normal);
            Add(p + "self_attn.q_norm.weight", [headDim], NearOne);
            Add(p + "self_attn.k_norm.weight", [headDim], NearOne);
            Add(p + "post_attention_layernorm.weight", [hiddenSize], NearOne);
            Add(p + "mlp.gate_proj.weight", [inter, hiddenSize], Normal);
            Add(p + "mlp.up_proj.weight", [inter, hiddenSize], Normal);
            Add(p + "mlp.down_proj.weight", [hiddenSize, inter], Normal);
        }
        Add("model.norm.weight", [hiddenSize], NearOne);
        Add("lm_head.weight", [vocab, hiddenSize], Normal);
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors, dtype);
        return folder;
    }

    internal static JsonObject Config(string modelType, int hidden, int heads, int kvHeads, int? headDim = null) => new()
    {
        ["model_type"] = modelType,
        ["vocab_size"] = 96,
        ["hidden_size"] = hidden,
        ["intermediate_size"] = 40,
        ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = heads,
        ["num_key_value_heads"] = kvHeads,
        ["head_dim"] = headDim,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 500000.0,
        ["tie_word_embeddings"] = false,
    };

    private static readonly int[] Ids = [5, 17, 90, 3, 44, 44, 71, 2, 60, 8, 31];

    [Fact]
    public void LlamaWithoutBiases()
    {
        string folder = WriteModel("llama", Config("llama", 32, 4, 2), n => !n.Contains("bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 32, 8, 4, 2);
        AssertMatchesNaive(folder, Ids, 1e-4);
    }

    [Fact]
    public void LlamaWithAttentionBiasesAndLlama3RopeScaling()
    {
        var config = Config("llama", 32, 4, 4);
        config["attention_bias"] = true;
        config["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8,
        };
        string folder = WriteModel("llama-bias", config, n => !n.Contains("q_norm") && !n.Contains("k_norm"), 32, 8, 4, 4);
        AssertMatchesNaive(folder, Ids, 1e-4);
    }

    [Fact]
    public void Qwen3WithQkNormAndAnExplicitHeadSize()
    {
        // head_dim 16 with 4 heads on a 32-wide model: the query width (64) differs from the hidden size.
        string folder = WriteModel("qwen3", Config("qwen3", 32, 4, 2, headDim: 16), n => !n.Contains("bias"), 32, 16, 4, 2);
        AssertMatchesNaive(folder, Ids, 1e-4);
    }

    [Fact]
    public void LinearRopeScalingDividesTheFrequencies()
    {
        var config = Config("qwen2", 32, 4, 2);
        config["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 };
        string folder = WriteModel("qwen2-linear", config, n => !n.Contains("o_proj.bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 32, 8, 4, 2);
        var plain = RopeScaling.BuildTable(ModelConfig.Load(Path.Combine(folder, "config.json")) with { RopeScaling = null });
        var scaled = RopeScaling.BuildTable(ModelConfig.Load(Path.Combine(folder, "config.json")));
        Assert.Equal(plain.InverseFrequencies.Select(f => f / 2f), scaled.InverseFrequencies);
        AssertMatchesNaive(folder, Ids, 1e-4);
    }

    [Fact]
    public void OddShapesAndASequenceSpanningSeveralAttentionTiles()
    {
        // head_dim 10, 3 query heads sharing 1 kv head, 97 tokens: crosses the attention kernel's 32-token blocks
        // and every vector width's remainder path.
        var config = Config("qwen2", 30, 3, 1);
        config["rms_norm_eps"] = 1e-6;
        config["rope_theta"] = 12345.0;
        string folder = WriteModel("odd", config, n => !n.Contains("o_proj.bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 30, 10, 3, 1);
        int[] ids = Enumerable.Range(0, 97).Select(i => (i * 37 + 11) % 96).ToArray();
        AssertMatchesNaive(folder, ids, 1e-4);
    }

    [Fact]
    public void CachedDecodingGivesTheSameLogitsAsOneFullForwardPass()
    {
        var config = Config("qwen2", 32, 4, 2);
        string folder = WriteModel("cache", config, n => !n.Contains("o_proj.bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 32, 8, 4, 2);
        int[] ids = Enumerable.Range(0, 70).Select(i => (i * 13 + 5) % 96).ToArray();
        using var model = DecoderModel.LoadForGeneration(folder);
        var (_, full) = model.Evaluate([ids], [ids.Select(_ => 1).ToArray()]);

        int prompt = 20, vocab = model.Config.VocabSize;
        var cache = model.CreateCache(1, ids.Length);
        var hidden = model.Backend.Allocate(prompt, model.Config.HiddenSize);
        model.Forward(ids[..prompt], Enumerable.Range(0, prompt).ToArray(), Enumerable.Repeat((byte)1, prompt).ToArray(), 1, prompt, cache, hidden);
        var step = model.Backend.Allocate(1, model.Config.HiddenSize);
        var stepOutput = model.Backend.Allocate(1, vocab);
        for (int t = prompt; t < ids.Length; t++)
        {
            model.Forward(ids[t..(t + 1)], [t], [1], 1, 1, cache, step);
            model.Logits(step, 1, stepOutput);
            var logits = model.Backend.ToHost(stepOutput);
            for (int i = 0; i < vocab; i++)
            {
                float e = full[t * vocab + i], a = logits[i];
                Assert.True(Math.Abs(e - a) <= 1e-4 * (1 + Math.Abs(e)), $"position {t}, logit {i}: full {e}, cached {a}");
            }
        }
    }

    [Fact]
    public void PaddedBatchRowsEqualTheirUnpaddedSelves()
    {
        var config = Config("qwen2", 32, 4, 2);
        string folder = WriteModel("batch", config, n => !n.Contains("o_proj.bias") && !n.Contains("q_norm") && !n.Contains("k_norm"), 32, 8, 4, 2);
        int[] longer = Enumerable.Range(0, 45).Select(i => (i * 7 + 3) % 96).ToArray();
        int[] shorter = longer[..38];
        using var model = DecoderModel.LoadForGeneration(folder);
        int vocab = model.Config.VocabSize;

        // Right padding keeps positions 0..T-1, so the real rows must equal the unpadded sequence's.
        int[][] ids = [longer, shorter.Concat(Enumerable.Repeat(0, 7)).ToArray()];
        int[][] mask = [longer.Select(_ => 1).ToArray(), shorter.Select(_ => 1).Concat(Enumerable.Repeat(0, 7)).ToArray()];
        var (_, batched) = model.Evaluate(ids, mask);
        var (_, alone) = model.Evaluate([shorter], [shorter.Select(_ => 1).ToArray()]);
        for (int t = 0; t < shorter.Length; t++)
            for (int i = 0; i < vocab; i++)
            {
                float e = alone[t * vocab + i], a = batched[(longer.Length + t) * vocab + i];
                Assert.True(Math.Abs(e - a) <= 1e-5 * (1 + Math.Abs(e)), $"position {t}, logit {i}: alone {e}, batched {a}");
            }
    }
}
