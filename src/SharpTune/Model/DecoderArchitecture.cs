using SharpTune.Engine;

namespace SharpTune.Model;

/// <summary>The projections of a decoder layer, by what they compute (whatever a checkpoint calls them).</summary>
public enum ProjectionSlot
{
    Query,
    Key,
    Value,
    Output,
    Gate,
    Up,
    Down,
}

/// <summary>The norms of a decoder layer; QueryNorm/KeyNorm are per head (Qwen3's q_norm/k_norm).</summary>
public enum NormSlot
{
    Input,
    PostAttention,
    QueryNorm,
    KeyNorm,
}

/// <summary>How a norm normalises: RMSNorm (weight · x / rms(x)), the only kind these decoders use.</summary>
public enum NormType
{
    Rms,
}

/// <summary>When a Linear carries a bias vector.</summary>
public enum BiasRule
{
    None,
    Always,
    /// <summary>When config.json's attention_bias is true.</summary>
    AttentionBias,
    /// <summary>When config.json's mlp_bias is true.</summary>
    MlpBias,
}

/// <summary>One tensor of a decoder layer, named relative to the layer (e.g. "self_attn.q_proj").</summary>
public abstract record LayerTensorDeclaration(string Module);

/// <summary>
/// A Linear of a layer under its Hugging Face module path. Parts lists the projections its weight holds, stacked
/// row-wise in that order: one part for an ordinary projection, several for a fused one (ChatGLM's
/// query_key_value = [q; k; v], dense_h_to_4h = [gate; up]); the bias, if any, is split the same way.
/// </summary>
public sealed record LinearDeclaration(string Module, IReadOnlyList<ProjectionSlot> Parts, BiasRule Bias) : LayerTensorDeclaration(Module)
{
    /// <summary>The last part of the module path (q_proj, dense_h_to_4h, ...), what PEFT's target_modules name.</summary>
    public string Name => Module[(Module.LastIndexOf('.') + 1)..];

    public bool IsFused => Parts.Count > 1;
    public string WeightName => Module + ".weight";
    public string BiasName => Module + ".bias";

    public bool HasBias(ModelConfig c) => Bias switch
    {
        BiasRule.Always => true,
        BiasRule.AttentionBias => c.AttentionBias,
        BiasRule.MlpBias => c.MlpBias,
        _ => false,
    };
}

/// <summary>A norm weight of a layer under its Hugging Face module path (the tensor is Module + ".weight").</summary>
public sealed record NormDeclaration(string Module, NormSlot Slot, NormType Type) : LayerTensorDeclaration(Module)
{
    public string WeightName => Module + ".weight";
}

/// <summary>
/// The one declaration of a decoder architecture's tensors and their roles: which Linears and norms a layer holds
/// under which Hugging Face names (in the order transformers registers them, which is the state_dict order), their
/// biases and fused-tensor splits, the model-level tensors, the norm epsilon's config key, whether the head may be
/// tied to the embedding, and how RoPE rotates. Loading, init-model, export and merge, LoRA and freeze targeting and
/// the memory estimate read names from here; no other code names a per-layer tensor.
/// </summary>
public sealed class DecoderArchitecture
{
    public required string ModelType { get; init; }
    public required string EmbeddingTensor { get; init; }
    /// <summary>Layer i's tensors are named LayerPrefix + i + "." + a declaration's module path.</summary>
    public required string LayerPrefix { get; init; }
    public required string FinalNormTensor { get; init; }
    public required string LmHeadTensor { get; init; }
    /// <summary>The config.json key that ties the head to the embedding, or null when the head is never tied.</summary>
    public required string? TieWordEmbeddingsKey { get; init; }
    /// <summary>The config.json key of every norm's epsilon.</summary>
    public required string NormEpsKey { get; init; }
    public required RopeStyle Rope { get; init; }
    /// <summary>The share of each head's dimensions RoPE rotates (the first ones); the rest pass through.</summary>
    public required double RotaryFraction { get; init; }
    /// <summary>
    /// A rotary inverse-frequency buffer the checkpoint stores (in state_dict order right after the embedding) that
    /// the model's own forward never reads, or null. ChatGLM's RotaryEmbedding registers inv_freq with base 10000 and
    /// the checkpoint's dtype, but recomputes the angles from kv_channels and rope_ratio in float32 at every forward;
    /// loading checks its shape only (<see cref="InverseFrequencyBufferLength"/>), and export copies it unchanged.
    /// </summary>
    public string? InverseFrequencyBuffer { get; init; }
    /// <summary>A layer's tensors in transformers' registration (state_dict) order.</summary>
    public required IReadOnlyList<LayerTensorDeclaration> Layer { get; init; }

    public IEnumerable<LinearDeclaration> Linears => Layer.OfType<LinearDeclaration>();
    public IEnumerable<NormDeclaration> Norms => Layer.OfType<NormDeclaration>();

    /// <summary>The Linear names lora_target "all" stands for: every Linear of a layer (lm_head excluded).</summary>
    public IReadOnlyList<string> LinearNames => Linears.Select(l => l.Name).ToArray();

    public bool HasNorm(NormSlot slot) => Norms.Any(n => n.Slot == slot);

    public string LayerTensor(int layer, string module) => $"{LayerPrefix}{layer}.{module}";

    /// <summary>The Linear computing <paramref name="slot"/>, alone or as a part of a fused one.</summary>
    public LinearDeclaration Projection(ProjectionSlot slot) => Linears.Single(l => l.Parts.Contains(slot));

    public NormDeclaration Norm(NormSlot slot) => Norms.Single(n => n.Slot == slot);

    /// <summary>
    /// Every tensor name this architecture may hold for a model of <paramref name="layers"/> layers, in state_dict
    /// order: embedding, each layer's weights (with a bias after each Linear), final norm, head. Which of them a
    /// checkpoint has depends on its config.
    /// </summary>
    public IEnumerable<string> StateDictOrder(int layers)
    {
        yield return EmbeddingTensor;
        if (InverseFrequencyBuffer is not null) yield return InverseFrequencyBuffer;
        for (int l = 0; l < layers; l++)
            foreach (var declaration in Layer)
            {
                if (declaration is LinearDeclaration linear)
                {
                    yield return LayerTensor(l, linear.WeightName);
                    yield return LayerTensor(l, linear.BiasName);
                }
                else
                    yield return LayerTensor(l, ((NormDeclaration)declaration).WeightName);
            }
        yield return FinalNormTensor;
        yield return LmHeadTensor;
    }

    /// <summary>The Linear whose weight <paramref name="tensorName"/> is, in any layer; null for every other tensor.</summary>
    public LinearDeclaration? LinearOfWeight(string tensorName)
    {
        if (!tensorName.StartsWith(LayerPrefix, StringComparison.Ordinal)) return null;
        int dot = tensorName.IndexOf('.', LayerPrefix.Length);
        if (dot < 0 || !int.TryParse(tensorName.AsSpan(LayerPrefix.Length, dot - LayerPrefix.Length), out _)) return null;
        string rest = tensorName[(dot + 1)..];
        return Linears.FirstOrDefault(l => l.WeightName == rest);
    }

    /// <summary>The [out, in] shape of a projection for a config.</summary>
    public static (int Out, int In) Shape(ModelConfig c, ProjectionSlot slot) => slot switch
    {
        ProjectionSlot.Query => (c.QueryWidth, c.HiddenSize),
        ProjectionSlot.Key or ProjectionSlot.Value => (c.KvWidth, c.HiddenSize),
        ProjectionSlot.Output => (c.HiddenSize, c.QueryWidth),
        ProjectionSlot.Gate or ProjectionSlot.Up => (c.IntermediateSize, c.HiddenSize),
        ProjectionSlot.Down => (c.HiddenSize, c.IntermediateSize),
        _ => throw new ArgumentOutOfRangeException(nameof(slot)),
    };

    /// <summary>The [out, in] shape of a Linear's weight: its parts' rows stacked, over their common input.</summary>
    public static (int Out, int In) Shape(ModelConfig c, LinearDeclaration linear) =>
        (linear.Parts.Sum(p => Shape(c, p).Out), Shape(c, linear.Parts[0]).In);

    /// <summary>The first row of <paramref name="slot"/>'s part in <paramref name="linear"/>'s output (0 for an ordinary projection).</summary>
    public static int PartOffset(ModelConfig c, LinearDeclaration linear, ProjectionSlot slot)
    {
        int offset = 0;
        foreach (var part in linear.Parts)
        {
            if (part == slot) return offset;
            offset += Shape(c, part).Out;
        }
        throw new ArgumentException($"'{linear.Module}' does not compute {slot}", nameof(slot));
    }

    /// <summary>The length of <see cref="InverseFrequencyBuffer"/>: one value per rotated pair of a head.</summary>
    public int InverseFrequencyBufferLength(ModelConfig c) => RotaryDim(c) / 2;

    /// <summary>The dimensions RoPE rotates at the start of each head (<see cref="RotaryFraction"/> of the head size).</summary>
    public int RotaryDim(ModelConfig c) => (int)(c.HeadDim * RotaryFraction);

    /// <summary>The length of a norm's weight: the hidden size, or the head size for per-head q/k norms.</summary>
    public static int Length(ModelConfig c, NormSlot slot) => slot is NormSlot.QueryNorm or NormSlot.KeyNorm ? c.HeadDim : c.HiddenSize;

    public static DecoderArchitecture For(Architecture architecture) => architecture switch
    {
        Architecture.Qwen2 => Qwen2,
        Architecture.Llama => Llama,
        Architecture.Qwen3 => Qwen3,
        Architecture.ChatGlm => ChatGlm,
        _ => throw new ArgumentOutOfRangeException(nameof(architecture)),
    };

    private static LinearDeclaration Linear(string module, ProjectionSlot slot, BiasRule bias) => new(module, [slot], bias);

    /// <summary>Qwen2DecoderLayer: q/k/v carry biases, o_proj and the MLP none.</summary>
    public static readonly DecoderArchitecture Qwen2 = Transformers("qwen2",
        qkvBias: BiasRule.Always, outputBias: BiasRule.None, mlpBias: BiasRule.None, qkNorms: false);

    /// <summary>LlamaDecoderLayer: attention_bias covers q/k/v/o, mlp_bias the MLP.</summary>
    public static readonly DecoderArchitecture Llama = Transformers("llama",
        qkvBias: BiasRule.AttentionBias, outputBias: BiasRule.AttentionBias, mlpBias: BiasRule.MlpBias, qkNorms: false);

    /// <summary>Qwen3DecoderLayer: per-head RMSNorm on queries and keys after their projections.</summary>
    public static readonly DecoderArchitecture Qwen3 = Transformers("qwen3",
        qkvBias: BiasRule.AttentionBias, outputBias: BiasRule.None, mlpBias: BiasRule.None, qkNorms: true);

    /// <summary>
    /// ChatGLMModel, the remote code (modeling_chatglm.py) of ChatGLM3-6B and GLM-4-9B-chat: query_key_value fuses
    /// [q; k; v] (key/value groups after the queries, a bias when add_qkv_bias), dense_h_to_4h fuses [gate; up], RoPE
    /// turns interleaved pairs of the first half of each head, the head (output_layer) is never tied to the embedding
    /// (the remote code has no get_output_embeddings for transformers to tie). add_bias_linear, post-norm residuals and
    /// LayerNorm are refused when the config is read, so dense and the MLP carry no bias.
    /// </summary>
    public static readonly DecoderArchitecture ChatGlm = new()
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
        InverseFrequencyBuffer = "transformer.rotary_pos_emb.inv_freq",
        Layer =
        [
            new NormDeclaration("input_layernorm", NormSlot.Input, NormType.Rms),
            new LinearDeclaration("self_attention.query_key_value", [ProjectionSlot.Query, ProjectionSlot.Key, ProjectionSlot.Value], BiasRule.AttentionBias),
            new LinearDeclaration("self_attention.dense", [ProjectionSlot.Output], BiasRule.None),
            new NormDeclaration("post_attention_layernorm", NormSlot.PostAttention, NormType.Rms),
            new LinearDeclaration("mlp.dense_h_to_4h", [ProjectionSlot.Gate, ProjectionSlot.Up], BiasRule.None),
            new LinearDeclaration("mlp.dense_4h_to_h", [ProjectionSlot.Down], BiasRule.None),
        ],
    };

    /// <summary>The layout transformers' Llama-family decoders share.</summary>
    private static DecoderArchitecture Transformers(string modelType, BiasRule qkvBias, BiasRule outputBias, BiasRule mlpBias, bool qkNorms) => new()
    {
        ModelType = modelType,
        EmbeddingTensor = "model.embed_tokens.weight",
        LayerPrefix = "model.layers.",
        FinalNormTensor = "model.norm.weight",
        LmHeadTensor = "lm_head.weight",
        TieWordEmbeddingsKey = "tie_word_embeddings",
        NormEpsKey = "rms_norm_eps",
        Rope = RopeStyle.RotateHalf,
        RotaryFraction = 1.0,
        Layer =
        [
            Linear("self_attn.q_proj", ProjectionSlot.Query, qkvBias),
            Linear("self_attn.k_proj", ProjectionSlot.Key, qkvBias),
            Linear("self_attn.v_proj", ProjectionSlot.Value, qkvBias),
            Linear("self_attn.o_proj", ProjectionSlot.Output, outputBias),
            .. qkNorms
                ? new LayerTensorDeclaration[]
                {
                    new NormDeclaration("self_attn.q_norm", NormSlot.QueryNorm, NormType.Rms),
                    new NormDeclaration("self_attn.k_norm", NormSlot.KeyNorm, NormType.Rms),
                }
                : [],
            Linear("mlp.gate_proj", ProjectionSlot.Gate, mlpBias),
            Linear("mlp.up_proj", ProjectionSlot.Up, mlpBias),
            Linear("mlp.down_proj", ProjectionSlot.Down, mlpBias),
            new NormDeclaration("input_layernorm", NormSlot.Input, NormType.Rms),
            new NormDeclaration("post_attention_layernorm", NormSlot.PostAttention, NormType.Rms),
        ],
    };
}
