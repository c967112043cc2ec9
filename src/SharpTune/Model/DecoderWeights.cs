using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Model;

/// <summary>The weights of one decoder layer. Matrices stay in their stored dtype; norms and biases are fp32.</summary>
public sealed class DecoderLayerWeights
{
    /// <summary>The layer's Linears in the architecture's declaration order (<see cref="DecoderArchitecture.Linears"/>).</summary>
    public required LinearWeights[] Linears { get; init; }
    public required float[] InputNorm { get; init; }
    public float[]? QNorm { get; init; }
    public float[]? KNorm { get; init; }
    public required float[] PostAttentionNorm { get; init; }
}

/// <summary>One Linear's weight (a fused one's parts stacked row-wise, as declared) and bias.</summary>
public sealed record LinearWeights(LinearDeclaration Declaration, WeightMatrix Weight, float[]? Bias);

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
        var arch = c.Description;
        var embedding = binder.Matrix(arch.EmbeddingTensor, c.VocabSize, c.HiddenSize);
        // With tie_word_embeddings transformers ties lm_head to the embedding even when the file also stores an
        // lm_head.weight, so the embedding is the output projection whatever the checkpoint holds.
        WeightMatrix lmHead = c.TieWordEmbeddings
            ? embedding
            : checkpoint.Contains(arch.LmHeadTensor)
                ? binder.Matrix(arch.LmHeadTensor, c.VocabSize, c.HiddenSize)
                : throw new ModelFolderException($"{folder}: tensor '{arch.LmHeadTensor}' is missing and tie_word_embeddings is false");

        // Read by nothing (see DecoderArchitecture.InverseFrequencyBuffer), so only its shape is checked when present.
        if (arch.InverseFrequencyBuffer is { } buffer && checkpoint.Contains(buffer))
            binder.Check(buffer, [arch.InverseFrequencyBufferLength(c)]);
        var layers = new DecoderLayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            int layer = i;
            LinearWeights Linear(LinearDeclaration linear)
            {
                var (rows, cols) = DecoderArchitecture.Shape(c, linear);
                return new LinearWeights(linear, binder.Matrix(arch.LayerTensor(layer, linear.WeightName), rows, cols),
                    linear.HasBias(c) ? binder.Vector(arch.LayerTensor(layer, linear.BiasName), rows) : null);
            }
            float[]? Norm(NormSlot slot) =>
                arch.HasNorm(slot) ? binder.Vector(arch.LayerTensor(layer, arch.Norm(slot).WeightName), DecoderArchitecture.Length(c, slot)) : null;
            layers[i] = new DecoderLayerWeights
            {
                InputNorm = Norm(NormSlot.Input)!,
                Linears = arch.Linears.Select(Linear).ToArray(),
                QNorm = Norm(NormSlot.QueryNorm),
                KNorm = Norm(NormSlot.KeyNorm),
                PostAttentionNorm = Norm(NormSlot.PostAttention)!,
            };
        }
        var finalNorm = binder.Vector(arch.FinalNormTensor, c.HiddenSize);
        return new DecoderWeights(checkpoint, embedding, lmHead, finalNorm, layers);
    }

    public void Dispose() => _checkpoint.Dispose();

    /// <summary>Looks tensors up by name and checks their shapes against the config.</summary>
    private readonly struct Binder(SafetensorsCheckpoint checkpoint, string folder)
    {
        public TensorInfo Check(string name, long[] expected)
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
            var info = Check(name, [rows, cols]);
            if (info.DType is not (DType.F32 or DType.BF16 or DType.F16))
                throw new ModelFolderException($"{folder}: tensor '{name}' is {info.DType}; weights must be F32, BF16 or F16");
            return new WeightMatrix(checkpoint.Pointer(name), info.DType, rows, cols);
        }

        public float[] Vector(string name, int length)
        {
            Check(name, [length]);
            return checkpoint.ReadFloat32(name);
        }
    }
}
