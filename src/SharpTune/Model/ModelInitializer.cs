using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.IO.Safetensors;
using SharpTune.Tokenization;

namespace SharpTune.Model;

/// <summary>
/// Writes a random-initialised Hugging Face model folder: config.json, generation_config.json, model.safetensors
/// (bf16 as Qwen ships, or float32) and the tokenizer files. Weights follow transformers' _init_weights: linear and embedding weights
/// ~ N(0, initializer_range), biases 0, norm weights 1. A ChatGLM preset writes ChatGLM3's config keys and tensor
/// names (with its inv_freq buffer) and takes a tokenizer.model folder.
/// </summary>
public static class ModelInitializer
{
    private static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt"];

    public static void Create(ModelPreset preset, string tokenizerDir, string outDir, int seed, DType dtype = DType.BF16)
    {
        if (dtype is not (DType.BF16 or DType.F32)) throw new ArgumentException($"init-model writes bf16 or float32 weights, not {dtype}", nameof(dtype));
        ModelFolder.ValidateTokenizer(tokenizerDir);
        var tokenizer = Tokenizer.FromDirectory(tokenizerDir);
        if (tokenizer.VocabSize > preset.VocabSize)
            throw new ArgumentException($"the tokenizer in '{tokenizerDir}' has {tokenizer.VocabSize} tokens, more than preset '{preset.Name}''s vocabulary of {preset.VocabSize}");
        bool chatGlm = preset.Architecture == Architecture.ChatGlm;
        // Qwen's <|endoftext|> is its bos and pad; ChatGLM3's SentencePiece model ends with </s> and pads with <unk>.
        var (endText, padText) = chatGlm ? ("</s>", "<unk>") : ("<|endoftext|>", "<|endoftext|>");
        int endOfText = tokenizer.TokenToId(endText)
            ?? throw new ArgumentException($"the tokenizer in '{tokenizerDir}' has no {endText} token (a {(chatGlm ? "ChatGLM3" : "Qwen")} tokenizer is expected)");
        int pad = tokenizer.TokenToId(padText) ?? endOfText;
        int eos = (TokenizerConfig.EosToken(tokenizerDir) is { } eosText ? tokenizer.TokenToId(eosText) : null) ?? endOfText;

        Directory.CreateDirectory(outDir);
        foreach (string file in TokenizerFiles)
        {
            string src = Path.Combine(tokenizerDir, file);
            if (File.Exists(src)) AtomicFile.Copy(src, Path.Combine(outDir, file));
        }
        string configJson = chatGlm ? ChatGlmConfigJson(preset, eos, pad, dtype) : ConfigJson(preset, endOfText, eos, dtype);
        using var configDocument = JsonDocument.Parse(configJson);
        var config = ModelConfig.Parse(configDocument.RootElement, "init-model's config.json");
        AtomicFile.WriteText(Path.Combine(outDir, "config.json"), configJson);
        AtomicFile.WriteText(Path.Combine(outDir, "generation_config.json"), chatGlm ? ChatGlmGenerationConfigJson(eos, pad) : GenerationConfigJson(endOfText, eos));
        SafetensorsWriter.Write(Path.Combine(outDir, "model.safetensors"), Tensors(preset, config, seed, dtype), new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static string ConfigJson(ModelPreset p, int bos, int eos, DType dtype) => new JsonObject
    {
        ["architectures"] = new JsonArray("Qwen2ForCausalLM"),
        ["attention_dropout"] = 0.0,
        ["bos_token_id"] = bos,
        ["eos_token_id"] = eos,
        ["hidden_act"] = "silu",
        ["hidden_size"] = p.HiddenSize,
        ["initializer_range"] = p.InitializerRange,
        ["intermediate_size"] = p.IntermediateSize,
        ["max_position_embeddings"] = p.MaxPositionEmbeddings,
        ["max_window_layers"] = p.NumLayers,
        ["model_type"] = "qwen2",
        ["num_attention_heads"] = p.NumHeads,
        ["num_hidden_layers"] = p.NumLayers,
        ["num_key_value_heads"] = p.NumKvHeads,
        ["rms_norm_eps"] = 1e-6,
        ["rope_theta"] = p.RopeTheta,
        ["sliding_window"] = p.MaxPositionEmbeddings,
        ["tie_word_embeddings"] = p.TieWordEmbeddings,
        ["torch_dtype"] = dtype == DType.F32 ? "float32" : "bfloat16",
        ["use_cache"] = true,
        ["use_sliding_window"] = false,
        ["vocab_size"] = p.VocabSize,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>ChatGLM3-6B's config.json (its remote code's keys and values) with the preset's sizes.</summary>
    private static string ChatGlmConfigJson(ModelPreset p, int eos, int pad, DType dtype) => new JsonObject
    {
        ["model_type"] = "chatglm",
        ["architectures"] = new JsonArray("ChatGLMModel"),
        ["auto_map"] = new JsonObject
        {
            ["AutoConfig"] = "configuration_chatglm.ChatGLMConfig",
            ["AutoModel"] = "modeling_chatglm.ChatGLMForConditionalGeneration",
            ["AutoModelForCausalLM"] = "modeling_chatglm.ChatGLMForConditionalGeneration",
        },
        ["add_bias_linear"] = false,
        ["add_qkv_bias"] = true,
        ["apply_query_key_layer_scaling"] = true,
        ["apply_residual_connection_post_layernorm"] = false,
        ["attention_dropout"] = 0.0,
        ["attention_softmax_in_fp32"] = true,
        ["bias_dropout_fusion"] = true,
        ["ffn_hidden_size"] = p.IntermediateSize,
        ["fp32_residual_connection"] = false,
        ["hidden_dropout"] = 0.0,
        ["hidden_size"] = p.HiddenSize,
        ["kv_channels"] = p.HiddenSize / p.NumHeads,
        ["layernorm_epsilon"] = 1e-5,
        ["multi_query_attention"] = true,
        ["multi_query_group_num"] = p.NumKvHeads,
        ["num_attention_heads"] = p.NumHeads,
        ["num_layers"] = p.NumLayers,
        ["original_rope"] = true,
        ["padded_vocab_size"] = p.VocabSize,
        ["post_layer_norm"] = true,
        ["rmsnorm"] = true,
        ["rope_ratio"] = p.RopeTheta / 10000,
        ["seq_length"] = p.MaxPositionEmbeddings,
        ["use_cache"] = true,
        ["torch_dtype"] = dtype == DType.F32 ? "float32" : "bfloat16",
        ["tie_word_embeddings"] = false,
        ["eos_token_id"] = eos,
        ["pad_token_id"] = pad,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private static string ChatGlmGenerationConfigJson(int eos, int pad) => new JsonObject
    {
        ["eos_token_id"] = new JsonArray(eos),
        ["pad_token_id"] = pad,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Qwen2.5-Instruct's published sampling defaults, so a generated folder behaves like a real one.</summary>
    private static string GenerationConfigJson(int endOfText, int eos) => new JsonObject
    {
        ["bos_token_id"] = endOfText,
        ["do_sample"] = true,
        ["eos_token_id"] = eos == endOfText ? new JsonArray(eos) : new JsonArray(eos, endOfText),
        ["pad_token_id"] = endOfText,
        ["repetition_penalty"] = 1.05,
        ["temperature"] = 0.7,
        ["top_k"] = 20,
        ["top_p"] = 0.8,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>
    /// The tensors in dtype, as the folder's config declares them (a Linear's weight is drawn when the layer
    /// declares it, so the draws follow the declaration's order). Values are drawn and rounded to bf16 whatever the
    /// dtype, so a float32 folder holds exactly the numbers of the bf16 folder of the same seed.
    /// </summary>
    private static IEnumerable<(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)> Tensors(ModelPreset p, ModelConfig config, int seed, DType dtype)
    {
        var random = new GaussianRandom(seed);
        var list = new List<(string, DType, long[], ReadOnlyMemory<byte>)>();
        void Normal(string name, int rows, int cols) => list.Add((name, dtype, [rows, cols], Bytes(random.Fill(rows * (long)cols, p.InitializerRange), dtype)));
        void Constant(string name, int length, float value) => list.Add((name, dtype, [length], Bytes(Enumerable.Repeat(value, length).ToArray(), dtype)));

        var arch = config.Description;
        Normal(arch.EmbeddingTensor, p.VocabSize, p.HiddenSize);
        if (arch.InverseFrequencyBuffer is { } buffer)
        {
            // ChatGLM's RotaryEmbedding buffer: 1 / 10000^(2i / n) over n = kv_channels / 2 dimensions, whatever rope_ratio.
            int n = arch.RotaryDim(config);
            var inverseFrequencies = Enumerable.Range(0, n / 2).Select(i => 1f / MathF.Pow(10000f, (float)(2 * i) / n)).ToArray();
            list.Add((buffer, dtype, [inverseFrequencies.Length], Bytes(inverseFrequencies, dtype)));
        }
        for (int i = 0; i < p.NumLayers; i++)
            foreach (var declaration in arch.Layer)
            {
                if (declaration is NormDeclaration norm)
                {
                    Constant(arch.LayerTensor(i, norm.WeightName), DecoderArchitecture.Length(config, norm.Slot), 1f);
                    continue;
                }
                var linear = (LinearDeclaration)declaration;
                var (rows, cols) = DecoderArchitecture.Shape(config, linear);
                Normal(arch.LayerTensor(i, linear.WeightName), rows, cols);
                if (linear.HasBias(config)) Constant(arch.LayerTensor(i, linear.BiasName), rows, 0f);
            }
        Constant(arch.FinalNormTensor, p.HiddenSize, p.FinalNormWeight);
        if (!p.TieWordEmbeddings) Normal(arch.LmHeadTensor, p.VocabSize, p.HiddenSize);
        return list;
    }

    private static byte[] Bytes(float[] values, DType dtype)
    {
        var bits = new ushort[values.Length];
        BFloat16.FromSingle(values, bits);
        if (dtype == DType.BF16) return MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
        BFloat16.ToSingle(bits, values);
        return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }

    /// <summary>A seeded normal generator (Box–Muller over System.Random), so a seed always gives the same model.</summary>
    private sealed class GaussianRandom(int seed)
    {
        private readonly Random _random = new(seed);

        public float[] Fill(long count, double std)
        {
            var values = new float[count];
            for (long i = 0; i < count; i += 2)
            {
                double u1 = 1.0 - _random.NextDouble(), u2 = _random.NextDouble();
                double radius = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
                values[i] = (float)(radius * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < count) values[i + 1] = (float)(radius * Math.Sin(2 * Math.PI * u2));
            }
            return values;
        }
    }
}
