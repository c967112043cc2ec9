using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Model;

/// <summary>
/// ChatGLM configurations the chatglm3-small fixture does not cover (other head sizes and group counts, GLM-4's
/// rope_ratio, bf16 weights, no multi-query attention, no q/k/v bias), checked against <see cref="NaiveChatGlm"/>,
/// itself checked against modeling_chatglm.py's logits; and the config combinations the decoder refuses.
/// </summary>
public sealed class ChatGlmVariantTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-chatglm-variant-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly int[] Ids = [5, 17, 90, 3, 44, 44, 71, 2, 60, 8, 31, 77, 12];

    [Fact]
    public void NaiveChatGlmReproducesTheRemoteCode()
    {
        var fx = new ReferenceFixture("chatglm3-small");
        float[] reference = fx.ForwardTensor("logits");
        int[] ids = fx.InputIds[0];
        double[][] naive = NaiveChatGlm.Logits(fx.Directory, ids);
        for (int t = 0; t < ids.Length; t++)
            for (int i = 0; i < 320; i++)
                Assert.True(Math.Abs(naive[t][i] - reference[t * 320 + i]) <= 1e-4, $"logits[{t},{i}]: naive {naive[t][i]}, reference {reference[t * 320 + i]}");
    }

    private static JsonObject Config(int hidden, int heads, int kvChannels, int? groups, bool qkvBias, double ropeRatio) => new()
    {
        ["model_type"] = "chatglm",
        ["architectures"] = new JsonArray("ChatGLMModel"),
        ["add_bias_linear"] = false,
        ["add_qkv_bias"] = qkvBias,
        ["apply_residual_connection_post_layernorm"] = false,
        ["ffn_hidden_size"] = 40,
        ["hidden_size"] = hidden,
        ["kv_channels"] = kvChannels,
        ["layernorm_epsilon"] = 1.5625e-07,
        ["multi_query_attention"] = groups is not null,
        ["multi_query_group_num"] = groups ?? 2,
        ["num_attention_heads"] = heads,
        ["num_layers"] = 2,
        ["padded_vocab_size"] = 96,
        ["post_layer_norm"] = true,
        ["rmsnorm"] = true,
        ["rope_ratio"] = ropeRatio,
        ["seq_length"] = 1024,
        ["tie_word_embeddings"] = false,
    };

    /// <summary>A random ChatGLM-layout folder for <paramref name="config"/>, stored as <paramref name="dtype"/>.</summary>
    private string WriteModel(string name, JsonObject config, DType dtype)
    {
        string folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        int hidden = config["hidden_size"]!.GetValue<int>(), heads = config["num_attention_heads"]!.GetValue<int>();
        int hd = config["kv_channels"]!.GetValue<int>(), ffn = config["ffn_hidden_size"]!.GetValue<int>();
        int groups = config["multi_query_attention"]!.GetValue<bool>() ? config["multi_query_group_num"]!.GetValue<int>() : heads;
        int qkv = (heads + 2 * groups) * hd;
        var random = new Random(13);
        var tensors = new List<(string, long[], float[])>();
        float Normal() => (float)(0.2 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        void Add(string tensor, long[] shape, Func<float> value) =>
            tensors.Add((tensor, shape, Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => value()).ToArray()));
        Add("transformer.embedding.word_embeddings.weight", [96, hidden], Normal);
        Add("transformer.rotary_pos_emb.inv_freq", [hd / 4], () => 1f);
        for (int l = 0; l < 2; l++)
        {
            string p = $"transformer.encoder.layers.{l}.";
            Add(p + "input_layernorm.weight", [hidden], () => 1 + 0.1f * Normal());
            Add(p + "self_attention.query_key_value.weight", [qkv, hidden], Normal);
            if (config["add_qkv_bias"]!.GetValue<bool>()) Add(p + "self_attention.query_key_value.bias", [qkv], Normal);
            Add(p + "self_attention.dense.weight", [hidden, heads * hd], Normal);
            Add(p + "post_attention_layernorm.weight", [hidden], () => 1 + 0.1f * Normal());
            Add(p + "mlp.dense_h_to_4h.weight", [2 * ffn, hidden], Normal);
            Add(p + "mlp.dense_4h_to_h.weight", [hidden, ffn], Normal);
        }
        Add("transformer.encoder.final_layernorm.weight", [hidden], () => 1 + 0.1f * Normal());
        Add("transformer.output_layer.weight", [96, hidden], Normal);
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors, dtype);
        return folder;
    }

    private static void AssertMatchesNaive(string folder)
    {
        using var model = DecoderModel.LoadForGeneration(folder);
        var (_, logits) = model.Evaluate([Ids], [Ids.Select(_ => 1).ToArray()]);
        double[][] expected = NaiveChatGlm.Logits(folder, Ids);
        for (int t = 0; t < Ids.Length; t++)
            for (int i = 0; i < 96; i++)
            {
                double e = expected[t][i], a = logits[t * 96 + i];
                Assert.True(Math.Abs(e - a) <= 1e-4 * (1 + Math.Abs(e)), $"logits[{t},{i}]: naive {e}, decoder {a}");
            }
    }

    /// <summary>GLM-4's rope_ratio, 3 groups of 6 heads, a head size (12) whose query width (72) is not the hidden size, bf16 weights.</summary>
    [Fact]
    public void Glm4LikeRopeRatioOtherGroupsAndBf16Weights() =>
        AssertMatchesNaive(WriteModel("glm4-like", Config(48, 6, 12, groups: 3, qkvBias: true, ropeRatio: 500), DType.BF16));

    /// <summary>Without multi_query_attention every head has its own keys and values; no q/k/v bias.</summary>
    [Fact]
    public void NoMultiQueryAttentionAndNoQkvBias() =>
        AssertMatchesNaive(WriteModel("mha", Config(32, 4, 8, groups: null, qkvBias: false, ropeRatio: 1), DType.F32));

    [Theory]
    [InlineData("rmsnorm", false)]
    [InlineData("apply_residual_connection_post_layernorm", true)]
    [InlineData("post_layer_norm", false)]
    [InlineData("add_bias_linear", true)]
    public void UnsupportedCombinationsAreRefusedNamingTheKey(string key, bool value)
    {
        var config = Config(32, 4, 8, groups: 2, qkvBias: true, ropeRatio: 1);
        config[key] = value;
        var e = Assert.Throws<ModelFolderException>(() => ModelConfig.Parse(System.Text.Json.JsonDocument.Parse(config.ToJsonString()).RootElement, "x/config.json"));
        Assert.StartsWith($"x/config.json: '{key}' {(value ? "true" : "false")} is not supported for model_type chatglm", e.Message);
    }

    [Fact]
    public void ThePrefixEncoderIsRefused()
    {
        var config = Config(32, 4, 8, groups: 2, qkvBias: true, ropeRatio: 1);
        config["pre_seq_len"] = 16;
        var e = Assert.Throws<ModelFolderException>(() => ModelConfig.Parse(System.Text.Json.JsonDocument.Parse(config.ToJsonString()).RootElement, "x/config.json"));
        Assert.Contains("'pre_seq_len' 16", e.Message);
    }

    [Fact]
    public void AnInverseFrequencyBufferOfAnotherHeadSizeIsRefused()
    {
        string folder = WriteModel("inv-freq", Config(32, 4, 8, groups: 2, qkvBias: true, ropeRatio: 1), DType.F32);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        config["kv_channels"] = 16;
        config["num_attention_heads"] = 2;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var e = Assert.ThrowsAny<Exception>(() => DecoderModel.LoadForGeneration(folder).Dispose());
        Assert.Contains("tensor 'transformer.rotary_pos_emb.inv_freq' has shape [2], config.json implies [4]", e.Message);
    }

    [Fact]
    public void PyTorchBinShardsAreRefusedWithAConversionHint()
    {
        string folder = Path.Combine(_dir, "bin");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), Config(32, 4, 8, groups: 2, qkvBias: true, ropeRatio: 1).ToJsonString());
        File.WriteAllBytes(Path.Combine(folder, "pytorch_model-00001-of-00007.bin"), [0x50, 0x4b]);
        var e = Assert.ThrowsAny<Exception>(() => DecoderModel.LoadForGeneration(folder).Dispose());
        Assert.Contains("found PyTorch *.bin weights: convert them to safetensors first", e.Message);
    }
}
