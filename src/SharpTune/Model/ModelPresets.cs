namespace SharpTune.Model;

/// <summary>
/// Named model shapes for init-model: small demo models and the exact shapes of real Qwen and ChatGLM3 releases.
/// FinalNormWeight sets model.norm.weight: with tied embeddings of std initializer_range, a norm of 1 caps every
/// logit near |h|·|e| ≈ √hidden · initializer_range · √hidden (8 for tiny), too small for LoRA, which cannot
/// touch the norm or the embedding, to ever drive the loss down; trained models have far larger final norms.
/// </summary>
public sealed record ModelPreset(
    string Name,
    string Description,
    int VocabSize,
    int HiddenSize,
    int IntermediateSize,
    int NumLayers,
    int NumHeads,
    int NumKvHeads,
    bool TieWordEmbeddings,
    double RopeTheta,
    int MaxPositionEmbeddings,
    double InitializerRange,
    float FinalNormWeight = 1f,
    Architecture Architecture = Architecture.Qwen2)
{
    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        new("tiny", "Qwen2 with the real 151936-token vocabulary and a 64-wide, 2-layer body (~20 MB in bf16); for demos and tests",
            151936, 64, 176, 2, 4, 2, true, 1_000_000, 32768, 0.125, FinalNormWeight: 4f),
        new("small", "Qwen2 with the real 151936-token vocabulary and a 256-wide, 8-layer body (~95 MB in bf16); big enough that a training run's memory is mostly the model's, for the memory estimate's checks",
            151936, 256, 1024, 8, 4, 2, true, 1_000_000, 32768, 0.0625, FinalNormWeight: 4f),
        new("qwen2.5-0.5b-shape", "Qwen2.5-0.5B's exact shapes (hidden 896, 24 layers, 14 heads, 2 kv heads, tied), random weights; for benchmarks",
            151936, 896, 4864, 24, 14, 2, true, 1_000_000, 32768, 0.02),
        new("qwen1.5-1.8b-shape", "Qwen1.5-1.8B-Chat's exact shapes (hidden 2048, 24 layers, 16 heads, 16 kv heads, untied), random weights; for benchmarks",
            151936, 2048, 5504, 24, 16, 16, false, 1_000_000, 32768, 0.02),
        new("chatglm3-tiny", "ChatGLM3-6B's layout (model_type chatglm: fused query_key_value with bias and dense_h_to_4h, 2 key/value groups, RoPE on half of each head, untied output_layer) with its 65024-token vocabulary and a 64-wide, 2-layer body (~17 MB in bf16); for tests, with a tokenizer.model folder",
            65024, 64, 112, 2, 4, 2, false, 10000, 8192, 0.125, FinalNormWeight: 4f, Architecture: Architecture.ChatGlm),
        new("chatglm3-6b-shape", "ChatGLM3-6B's exact shapes (hidden 4096, 28 layers, 32 heads, 2 key/value groups, ffn 13696, untied), random weights; for benchmarks",
            65024, 4096, 13696, 28, 32, 2, false, 10000, 8192, 0.02, Architecture: Architecture.ChatGlm),
    ];

    public static ModelPreset Get(string name) =>
        All.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"unknown preset '{name}' (known: {string.Join(", ", All.Select(p => p.Name))})");
}
