using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Model;

/// <summary>The weights of one decoder layer. Matrices stay in their stored dtype; norms and biases are fp32.</summary>
public sealed class DecoderLayerWeights
{
    public required float[] InputNorm { get; init; }
    public required WeightMatrix QProj { get; init; }
    public required WeightMatrix KProj { get; init; }
    public required WeightMatrix VProj { get; init; }
    public required WeightMatrix OProj { get; init; }
    public float[]? QBias { get; init; }
    public float[]? KBias { get; init; }
    public float[]? VBias { get; init; }
    public float[]? OBias { get; init; }
    public float[]? QNorm { get; init; }
    public float[]? KNorm { get; init; }
    public required float[] PostAttentionNorm { get; init; }
    public required WeightMatrix GateProj { get; init; }
    public required WeightMatrix UpProj { get; init; }
    public required WeightMatrix DownProj { get; init; }
    public float[]? GateBias { get; init; }
    public float[]? UpBias { get; init; }
    public float[]? DownBias { get; init; }
}

/// <summary>
/// All weights of a decoder, bound to a checkpoint that stays memory-mapped: a bf16 checkpoint costs two bytes
/// per parameter in memory, and the matrices are widened to fp32 only inside the matrix-multiply packing.
/// </summary>
public sealed unsafe class DecoderWeights : IDisposable
{
    private readonly SafetensorsCheckpoint _checkpoint;

    public WeightMatrix Embedding { get; }
    public WeightMatrix LmHead { get; }
    public float[] FinalNorm { get; }
    public DecoderLayerWeights[] Layers { get; }

    private DecoderWeights(SafetensorsCheckpoint checkpoint, WeightMatrix embedding, WeightMatrix lmHead, float[] finalNorm, DecoderLayerWeights[] layers)
    {
        _checkpoint = checkpoint;
        Embedding = embedding;
        LmHead = lmHead;
        FinalNorm = finalNorm;
        Layers = layers;
    }

    public static DecoderWeights Load(SafetensorsCheckpoint checkpoint, ModelConfig c, string folder)
    {
        var binder = new Binder(checkpoint, folder);
        var embedding = binder.Matrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize);
        // With tie_word_embeddings transformers ties lm_head to the embedding even when the file also stores an
        // lm_head.weight, so the embedding is the output projection whatever the checkpoint holds.
        WeightMatrix lmHead = c.TieWordEmbeddings
            ? embedding
            : checkpoint.Contains("lm_head.weight")
                ? binder.Matrix("lm_head.weight", c.VocabSize, c.HiddenSize)
                : throw new ModelFolderException($"{folder}: tensor 'lm_head.weight' is missing and tie_word_embeddings is false");

        var layers = new DecoderLayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            layers[i] = new DecoderLayerWeights
            {
                InputNorm = binder.Vector(p + "input_layernorm.weight", c.HiddenSize),
                QProj = binder.Matrix(p + "self_attn.q_proj.weight", c.QueryWidth, c.HiddenSize),
                KProj = binder.Matrix(p + "self_attn.k_proj.weight", c.KvWidth, c.HiddenSize),
                VProj = binder.Matrix(p + "self_attn.v_proj.weight", c.KvWidth, c.HiddenSize),
                OProj = binder.Matrix(p + "self_attn.o_proj.weight", c.HiddenSize, c.QueryWidth),
                QBias = c.AttentionBias ? binder.Vector(p + "self_attn.q_proj.bias", c.QueryWidth) : null,
                KBias = c.AttentionBias ? binder.Vector(p + "self_attn.k_proj.bias", c.KvWidth) : null,
                VBias = c.AttentionBias ? binder.Vector(p + "self_attn.v_proj.bias", c.KvWidth) : null,
                // Qwen2 has q/k/v biases but none on o_proj; Llama's attention_bias covers o_proj too.
                OBias = c.AttentionBias && c.Architecture == Architecture.Llama ? binder.Vector(p + "self_attn.o_proj.bias", c.HiddenSize) : null,
                QNorm = c.HasQkNorm ? binder.Vector(p + "self_attn.q_norm.weight", c.HeadDim) : null,
                KNorm = c.HasQkNorm ? binder.Vector(p + "self_attn.k_norm.weight", c.HeadDim) : null,
                PostAttentionNorm = binder.Vector(p + "post_attention_layernorm.weight", c.HiddenSize),
                GateProj = binder.Matrix(p + "mlp.gate_proj.weight", c.IntermediateSize, c.HiddenSize),
                UpProj = binder.Matrix(p + "mlp.up_proj.weight", c.IntermediateSize, c.HiddenSize),
                DownProj = binder.Matrix(p + "mlp.down_proj.weight", c.HiddenSize, c.IntermediateSize),
                GateBias = c.MlpBias ? binder.Vector(p + "mlp.gate_proj.bias", c.IntermediateSize) : null,
                UpBias = c.MlpBias ? binder.Vector(p + "mlp.up_proj.bias", c.IntermediateSize) : null,
                DownBias = c.MlpBias ? binder.Vector(p + "mlp.down_proj.bias", c.HiddenSize) : null,
            };
        }
        var finalNorm = binder.Vector("model.norm.weight", c.HiddenSize);
        return new DecoderWeights(checkpoint, embedding, lmHead, finalNorm, layers);
    }

    public void Dispose() => _checkpoint.Dispose();

    /// <summary>Looks tensors up by name and checks their shapes against the config.</summary>
    private readonly struct Binder(SafetensorsCheckpoint checkpoint, string folder)
    {
        private TensorInfo Find(string name, long[] expected)
        {
            if (!checkpoint.Contains(name))
                throw new ModelFolderException($"{folder}: tensor '{name}' is missing");
            var info = checkpoint.Get(name);
            if (!info.Shape.SequenceEqual(expected))
                throw new ModelFolderException($"{folder}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], config.json implies [{string.Join(", ", expected)}]");
            return info;
        }

        public WeightMatrix Matrix(string name, int rows, int cols)
        {
            var info = Find(name, [rows, cols]);
            if (info.DType is not (DType.F32 or DType.BF16 or DType.F16))
                throw new ModelFolderException($"{folder}: tensor '{name}' is {info.DType}; weights must be F32, BF16 or F16");
            return new WeightMatrix(checkpoint.Pointer(name), info.DType, rows, cols);
        }

        public float[] Vector(string name, int length)
        {
            Find(name, [length]);
            return checkpoint.ReadFloat32(name);
        }
    }
}
