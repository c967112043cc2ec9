using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Model;

/// <summary>Architectures of the decoder family SharpTune runs; they differ only in biases and norms.</summary>
public enum Architecture
{
    /// <summary>Qwen1.5, Qwen2, Qwen2.5: q/k/v projections carry biases.</summary>
    Qwen2,
    /// <summary>Llama: no biases unless attention_bias/mlp_bias say so.</summary>
    Llama,
    /// <summary>Qwen3: no q/k/v bias, per-head RMSNorm on queries and keys (q_norm, k_norm).</summary>
    Qwen3,
    /// <summary>ChatGLM3 and GLM-4 (model_type chatglm, remote code): fused q/k/v and gate/up, RoPE on half of each head.</summary>
    ChatGlm,
}

/// <summary>The subset of a Hugging Face config.json that defines the decoder, validated on load.</summary>
public sealed record ModelConfig
{
    public required Architecture Architecture { get; init; }
    public required string ModelType { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required float RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public RopeScaling? RopeScaling { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    public required bool AttentionBias { get; init; }
    public required bool MlpBias { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    public string? TorchDtype { get; init; }

    public int QueryWidth => NumHeads * HeadDim;
    public int KvWidth => NumKvHeads * HeadDim;
    /// <summary>The architecture's tensor layout (<see cref="DecoderArchitecture"/>).</summary>
    public DecoderArchitecture Description => DecoderArchitecture.For(Architecture);
    public bool HasQkNorm => Description.HasNorm(NormSlot.QueryNorm);

    public static ModelConfig Load(string configPath)
    {
        if (!File.Exists(configPath)) throw new ModelFolderException($"{configPath}: config.json is missing");
        var bytes = Utf8Validation.ReadJsonFile(configPath, message => new ModelFolderException(message));
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"{configPath}: not valid JSON ({e.Message})");
        }
        return Parse(root, configPath);
    }

    public static ModelConfig Parse(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ModelFolderException($"{source}: expected a JSON object");
        var reader = new JsonConfigReader(root, source, message => new ModelFolderException(message));
        string modelType = reader.RequiredString("model_type");
        Architecture architecture = modelType switch
        {
            "qwen2" => Architecture.Qwen2,
            "llama" => Architecture.Llama,
            "qwen3" => Architecture.Qwen3,
            "chatglm" => Architecture.ChatGlm,
            _ => throw new ModelFolderException($"{source}: model_type {MessageText.Quote(modelType)} is not supported (supported: qwen2, llama, qwen3, chatglm)"),
        };
        if (architecture == Architecture.ChatGlm) return ParseChatGlm(reader, source);

        var description = DecoderArchitecture.For(architecture);
        string hiddenAct = reader.OptionalString("hidden_act") ?? "silu";
        if (hiddenAct != "silu") throw new ModelFolderException($"{source}: hidden_act {MessageText.Quote(hiddenAct)} is not supported (only silu)");

        int hidden = reader.RequiredInt("hidden_size", min: 1);
        int heads = reader.RequiredInt("num_attention_heads");
        int kvHeads = reader.OptionalInt("num_key_value_heads") ?? heads;
        int headDim = reader.OptionalInt("head_dim") ?? (heads > 0 ? hidden / heads : 0);
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
            throw new ModelFolderException($"{source}: num_attention_heads {heads} must be a positive multiple of num_key_value_heads {kvHeads}");
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ModelFolderException($"{source}: head size {headDim} must be positive and even");

        int layers = reader.RequiredInt("num_hidden_layers", min: 1);
        int maxPositions = reader.OptionalInt("max_position_embeddings", min: 1) ?? 32768;

        // Hugging Face applies a sliding window only when use_sliding_window is set, and then only to layers at
        // or above max_window_layers; SharpTune attends over the full context, so refuse such a model rather
        // than compute something else.
        if (reader.OptionalBool("use_sliding_window") == true)
        {
            int? window = reader.OptionalInt("sliding_window");
            int maxWindowLayers = reader.OptionalInt("max_window_layers") ?? layers;
            if (window is not null && maxWindowLayers < layers)
                throw new ModelFolderException($"{source}: sliding-window attention (use_sliding_window: true, sliding_window {window}, max_window_layers {maxWindowLayers}) is not supported");
        }

        return new ModelConfig
        {
            Architecture = architecture,
            ModelType = modelType,
            VocabSize = reader.RequiredInt("vocab_size", min: 1),
            HiddenSize = hidden,
            IntermediateSize = reader.RequiredInt("intermediate_size", min: 1),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = (float)(reader.OptionalDouble(description.NormEpsKey, min: 0) ?? 1e-6),
            RopeTheta = reader.OptionalDouble("rope_theta", min: 0, minExclusive: true) ?? 10000.0,
            RopeScaling = Model.RopeScaling.Parse(root, reader, source),
            TieWordEmbeddings = description.TieWordEmbeddingsKey is { } tieKey && (reader.OptionalBool(tieKey) ?? false),
            AttentionBias = architecture switch
            {
                Architecture.Qwen2 => true,
                _ => reader.OptionalBool("attention_bias") ?? false,
            },
            MlpBias = architecture == Architecture.Llama && (reader.OptionalBool("mlp_bias") ?? false),
            MaxPositionEmbeddings = maxPositions,
            BosTokenId = reader.OptionalInt("bos_token_id", min: 0),
            EosTokenIds = reader.OptionalIntOrList("eos_token_id", min: 0),
            TorchDtype = reader.OptionalString("torch_dtype"),
        };
    }

    /// <summary>
    /// ChatGLMConfig's keys (configuration_chatglm.py, its defaults where a key is absent). What modeling_chatglm.py
    /// can compute but this decoder does not is refused naming the key: LayerNorm instead of RMSNorm, residuals taken
    /// after the norm, no final norm, biases on dense and the MLP, and the P-tuning v2 prefix encoder (pre_seq_len).
    /// </summary>
    private static ModelConfig ParseChatGlm(JsonConfigReader reader, string source)
    {
        void Require(string key, bool supported, bool value)
        {
            if ((reader.OptionalBool(key) ?? value) != supported)
                throw new ModelFolderException($"{source}: '{key}' {(supported ? "false" : "true")} is not supported for model_type chatglm (only {(supported ? "true" : "false")})");
        }
        Require("rmsnorm", supported: true, value: true);
        Require("apply_residual_connection_post_layernorm", supported: false, value: false);
        Require("post_layer_norm", supported: true, value: true);
        Require("add_bias_linear", supported: false, value: false);
        if (reader.OptionalInt("pre_seq_len") is { } prefix)
            throw new ModelFolderException($"{source}: 'pre_seq_len' {prefix} (ChatGLM's P-tuning v2 prefix encoder) is not supported; use a model without it");

        int hidden = reader.RequiredInt("hidden_size", min: 1);
        int heads = reader.RequiredInt("num_attention_heads", min: 1);
        // Without multi_query_attention every head has its own keys and values (modeling_chatglm.py's SelfAttention).
        int kvHeads = reader.OptionalBool("multi_query_attention") == true ? reader.OptionalInt("multi_query_group_num", min: 1) ?? 1 : heads;
        if (heads % kvHeads != 0)
            throw new ModelFolderException($"{source}: num_attention_heads {heads} must be a multiple of multi_query_group_num {kvHeads}");
        int headDim = reader.OptionalInt("kv_channels", min: 1) ?? hidden / heads;
        // RoPE turns pairs of the first half of each head.
        if (headDim <= 0 || headDim % 4 != 0)
            throw new ModelFolderException($"{source}: 'kv_channels' {headDim} must be a positive multiple of 4 (RoPE turns pairs of the first half of each head)");
        double ropeRatio = reader.OptionalDouble("rope_ratio", min: 0, minExclusive: true) ?? 1.0;
        return new ModelConfig
        {
            Architecture = Architecture.ChatGlm,
            ModelType = "chatglm",
            VocabSize = reader.RequiredInt("padded_vocab_size", min: 1),
            HiddenSize = hidden,
            IntermediateSize = reader.RequiredInt("ffn_hidden_size", min: 1),
            NumLayers = reader.RequiredInt("num_layers", min: 1),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = (float)(reader.OptionalDouble("layernorm_epsilon", min: 0) ?? 1e-5),
            // RotaryEmbedding.forward_impl: base = 10000 * rope_ratio.
            RopeTheta = 10000.0 * ropeRatio,
            TieWordEmbeddings = false,
            AttentionBias = reader.OptionalBool("add_qkv_bias") ?? false,
            MlpBias = false,
            MaxPositionEmbeddings = reader.OptionalInt("seq_length", min: 1) ?? 2048,
            BosTokenId = reader.OptionalInt("bos_token_id", min: 0),
            EosTokenIds = reader.OptionalIntOrList("eos_token_id", min: 0),
            TorchDtype = reader.OptionalString("torch_dtype"),
        };
    }
}
