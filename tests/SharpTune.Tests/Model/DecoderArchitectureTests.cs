using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Tests.Model;

/// <summary>The architecture description: the one place that names a decoder's tensors.</summary>
public sealed class DecoderArchitectureTests
{
    /// <summary>
    /// ChatGLM3 as docs/architecture.md declares it: fused query_key_value (with bias) and dense_h_to_4h = [gate; up],
    /// RoPE on the first half of each head in interleaved pairs. The decoder does not compute it yet; the type must
    /// express it.
    /// </summary>
    private static readonly DecoderArchitecture ChatGlm3 = new()
    {
        ModelType = "chatglm",
        EmbeddingTensor = "transformer.embedding.word_embeddings.weight",
        LayerPrefix = "transformer.encoder.layers.",
        FinalNormTensor = "transformer.encoder.final_layernorm.weight",
        LmHeadTensor = "transformer.output_layer.weight",
        TieWordEmbeddingsKey = null,
        NormEpsKey = "layernorm_epsilon",
        Rope = RopeStyle.InterleavedPairs,
        RotaryFraction = 0.5,
        Layer =
        [
            new NormDeclaration("input_layernorm", NormSlot.Input, NormType.Rms),
            new LinearDeclaration("self_attention.query_key_value", [ProjectionSlot.Query, ProjectionSlot.Key, ProjectionSlot.Value], BiasRule.Always),
            new LinearDeclaration("self_attention.dense", [ProjectionSlot.Output], BiasRule.None),
            new NormDeclaration("post_attention_layernorm", NormSlot.PostAttention, NormType.Rms),
            new LinearDeclaration("mlp.dense_h_to_4h", [ProjectionSlot.Gate, ProjectionSlot.Up], BiasRule.None),
            new LinearDeclaration("mlp.dense_4h_to_h", [ProjectionSlot.Down], BiasRule.None),
        ],
    };

    [Fact]
    public void ChatGlm3_is_declarable_with_fused_projections_and_the_decoder_refuses_to_split_them()
    {
        Assert.Equal(["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], ChatGlm3.LinearNames);
        var qkv = ChatGlm3.LinearOfWeight("transformer.encoder.layers.3.self_attention.query_key_value.weight");
        Assert.NotNull(qkv);
        Assert.True(qkv.IsFused);
        Assert.Equal([ProjectionSlot.Query, ProjectionSlot.Key, ProjectionSlot.Value], qkv.Parts);
        Assert.Equal(ProjectionSlot.Output, ChatGlm3.Projection(ProjectionSlot.Output).Parts.Single());
        var refused = Assert.Throws<NotSupportedException>(() => ChatGlm3.Projection(ProjectionSlot.Up));
        Assert.Contains("mlp.dense_h_to_4h", refused.Message);
        Assert.Equal(
        [
            "transformer.embedding.word_embeddings.weight",
            "transformer.encoder.layers.0.input_layernorm.weight",
            "transformer.encoder.layers.0.self_attention.query_key_value.weight",
            "transformer.encoder.layers.0.self_attention.query_key_value.bias",
            "transformer.encoder.layers.0.self_attention.dense.weight",
            "transformer.encoder.layers.0.self_attention.dense.bias",
            "transformer.encoder.layers.0.post_attention_layernorm.weight",
            "transformer.encoder.layers.0.mlp.dense_h_to_4h.weight",
            "transformer.encoder.layers.0.mlp.dense_h_to_4h.bias",
            "transformer.encoder.layers.0.mlp.dense_4h_to_h.weight",
            "transformer.encoder.layers.0.mlp.dense_4h_to_h.bias",
            "transformer.encoder.final_layernorm.weight",
            "transformer.output_layer.weight",
        ], ChatGlm3.StateDictOrder(1));
    }

    /// <summary>
    /// transformers' own Qwen2 checkpoint (the fixture) holds exactly the tensors the qwen2 description declares for
    /// its config: every declared weight, a bias where the bias rule says so, nothing undeclared.
    /// </summary>
    [Theory]
    [InlineData("qwen2-small-vocab")]
    [InlineData("qwen2-tiny")]
    public void Qwen2_description_names_exactly_the_tensors_of_a_transformers_checkpoint(string fixture)
    {
        string folder = TestPaths.Fixtures(fixture);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(folder));
        Assert.Same(DecoderArchitecture.Qwen2, config.Description);
        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(folder);
        var arch = config.Description;
        var expected = new List<string> { arch.EmbeddingTensor };
        for (int l = 0; l < config.NumLayers; l++)
        {
            foreach (var norm in arch.Norms) expected.Add(arch.LayerTensor(l, norm.WeightName));
            foreach (var linear in arch.Linears)
            {
                expected.Add(arch.LayerTensor(l, linear.WeightName));
                if (linear.HasBias(config)) expected.Add(arch.LayerTensor(l, linear.BiasName));
            }
        }
        expected.Add(arch.FinalNormTensor);
        if (!config.TieWordEmbeddings) expected.Add(arch.LmHeadTensor);
        Assert.Equal(expected.Order(StringComparer.Ordinal), checkpoint.Names.Where(n => !(config.TieWordEmbeddings && n == arch.LmHeadTensor)).Order(StringComparer.Ordinal));
        Assert.All(checkpoint.Names, n => Assert.Contains(n, arch.StateDictOrder(config.NumLayers)));
    }

    [Fact]
    public void Linear_of_weight_finds_layer_projections_only()
    {
        var arch = DecoderArchitecture.Qwen3;
        Assert.Equal("down_proj", arch.LinearOfWeight("model.layers.12.mlp.down_proj.weight")?.Name);
        Assert.Null(arch.LinearOfWeight("model.layers.12.mlp.down_proj.bias"));
        Assert.Null(arch.LinearOfWeight("model.layers.x.mlp.down_proj.weight"));
        Assert.Null(arch.LinearOfWeight("model.layers.0.self_attn.q_norm.weight"));
        Assert.Null(arch.LinearOfWeight(arch.LmHeadTensor));
        Assert.True(arch.HasNorm(NormSlot.QueryNorm));
        Assert.False(DecoderArchitecture.Llama.HasNorm(NormSlot.QueryNorm));
    }
}
