using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Tests.Model;

/// <summary>The architecture description: the one place that names a decoder's tensors.</summary>
public sealed class DecoderArchitectureTests
{
    /// <summary>
    /// ChatGLM3's declaration: fused query_key_value (with add_qkv_bias's bias) and dense_h_to_4h = [gate; up], whose
    /// parts sit at the row offsets modeling_chatglm.py splits them at, and the state_dict order of its checkpoint,
    /// inv_freq after the embedding.
    /// </summary>
    [Fact]
    public void ChatGlm_declares_fused_projections_and_its_parts_offsets()
    {
        var arch = DecoderArchitecture.ChatGlm;
        var config = ModelConfig.Load(ModelFolder.ConfigPath(TestPaths.Fixtures("chatglm3-small")));
        Assert.Same(arch, config.Description);
        Assert.Equal(["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], arch.LinearNames);
        var qkv = arch.LinearOfWeight("transformer.encoder.layers.3.self_attention.query_key_value.weight");
        Assert.NotNull(qkv);
        Assert.True(qkv.IsFused);
        Assert.Same(qkv, arch.Projection(ProjectionSlot.Key));
        // 4 heads × 16 query rows, then 2 groups × 16 key rows, then the values.
        Assert.Equal((128, 64), DecoderArchitecture.Shape(config, qkv));
        Assert.Equal([0, 64, 96], qkv.Parts.Select(p => DecoderArchitecture.PartOffset(config, qkv, p)));
        var gateUp = arch.Projection(ProjectionSlot.Up);
        Assert.Equal((224, 64), DecoderArchitecture.Shape(config, gateUp));
        Assert.Equal(112, DecoderArchitecture.PartOffset(config, gateUp, ProjectionSlot.Up));
        Assert.Equal(
        [
            "transformer.embedding.word_embeddings.weight",
            "transformer.rotary_pos_emb.inv_freq",
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
        ], arch.StateDictOrder(1));
    }

    /// <summary>
    /// transformers' own Qwen2 checkpoints and ChatGLM3's remote code's (the fixtures) hold exactly the tensors their
    /// description declares for their config: every declared weight, a bias where the bias rule says so, nothing
    /// undeclared.
    /// </summary>
    [Theory]
    [InlineData("qwen2-small-vocab")]
    [InlineData("qwen2-tiny")]
    [InlineData("chatglm3-small")]
    public void Description_names_exactly_the_tensors_of_a_reference_checkpoint(string fixture)
    {
        string folder = TestPaths.Fixtures(fixture);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(folder));
        using var checkpoint = SafetensorsCheckpoint.OpenDirectory(folder);
        var arch = config.Description;
        var expected = new List<string> { arch.EmbeddingTensor };
        if (arch.InverseFrequencyBuffer is { } buffer) expected.Add(buffer);
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
