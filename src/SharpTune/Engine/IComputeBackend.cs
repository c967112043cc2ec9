namespace SharpTune.Engine;

/// <summary>
/// Everything the decoder computes, expressed as whole-tensor operations. Model code talks only to this
/// interface, so another device (a CUDA backend, say) implements these methods over its own buffers without
/// the model changing. Rows are the flattened (batch × time) positions of a [rows × width] activation.
/// </summary>
public interface IComputeBackend
{
    /// <summary>One-line description for start-up reporting, e.g. "cpu, gemm: onednn, 2 threads".</summary>
    string Describe();

    /// <summary>The matrix-multiply kernel behind this backend (general GEMM with either operand transposed).</summary>
    IGemmKernel Gemm { get; }

    /// <summary>y[rows × w.Rows] = x[rows × w.Cols] · wᵀ (+ bias).</summary>
    void Linear(Tensor x, int rows, WeightMatrix w, float[]? bias, Tensor y);

    /// <summary>y[rows × w.Rows] = x[rows × w.Cols] · wᵀ (+ bias) for a compact frozen matrix (quantised weights).</summary>
    void Linear(Tensor x, int rows, IFrozenMatrix w, float[]? bias, Tensor y);

    /// <summary>dst[i] = table[ids[i]] (a row gather with widening to fp32).</summary>
    void Embedding(WeightMatrix table, ReadOnlySpan<int> ids, Tensor dst);

    /// <summary>y = weight ⊙ x / sqrt(mean(x²) + eps) for each row of width weight.Length.</summary>
    void RmsNorm(Tensor x, int rows, float[] weight, float eps, Tensor y);

    /// <summary>Rotary position embedding ("rotate_half" layout) applied in place to each head of each row.</summary>
    void ApplyRope(Tensor x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions);

    /// <summary>dst = silu(gate) ⊙ up over the first rows × width elements.</summary>
    void SiluMul(Tensor gate, Tensor up, int rows, Tensor dst);

    /// <summary>dst += src over the first rows × width elements (the residual add).</summary>
    void AddInPlace(Tensor dst, Tensor src, int rows);

    /// <summary>
    /// Grouped-query attention of the new queries against the cached keys/values of one layer.
    /// q is [batch·newTokens × heads·headDim]; the new keys/values must already be in the cache.
    /// keyMask holds one row of maskStride bytes per sequence, 1 = attend and 0 = padding, for positions
    /// 0..cache.Length-1; queries also never see later positions.
    /// </summary>
    void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] keyMask, int maskStride, Tensor output);
}
