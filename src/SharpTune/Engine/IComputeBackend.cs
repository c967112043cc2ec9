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

    /// <summary>Backward of the embedding: tableGrad[ids[i]] += dOutput[i] for each row i of width values.</summary>
    void EmbeddingBackward(float[] dOutput, ReadOnlySpan<int> ids, int width, float[] tableGrad);

    /// <summary>
    /// RMSNorm over groups of weight.Length values (a row, or a head for q/k norms): y = weight ⊙ x / sqrt(mean(x²) + eps),
    /// y may be x. inverseRms, when given, receives 1/rms per group for the backward.
    /// </summary>
    void RmsNorm(float[] x, int groups, float[] weight, float eps, float[] y, float[]? inverseRms = null);

    /// <summary>
    /// Backward of <see cref="RmsNorm"/>: dx (may be dy) from dy, and weightGrad += Σ dy ⊙ x̂ when given; either
    /// may be null when not wanted.
    /// </summary>
    void RmsNormBackward(float[] x, float[] dy, int groups, float[] weight, float[] inverseRms, float[]? dx, float[]? weightGrad);

    /// <summary>
    /// Rotary position embedding applied in place to each head of each of rows rows at their positions, on the
    /// dimensions and in the pairing the table gives (rotate_half, or ChatGLM's interleaved pairs on part of a head);
    /// inverse rotates back, which is its backward.
    /// </summary>
    void Rope(float[] x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions, bool inverse = false);

    /// <summary>dst = silu(gate) ⊙ up over count elements; dst may be gate.</summary>
    void SiluMul(float[] gate, float[] up, int count, float[] dst);

    /// <summary>Backward of <see cref="SiluMul"/>: dGate and dUp from dActivation.</summary>
    void SiluMulBackward(float[] gate, float[] up, float[] dActivation, int count, float[] dGate, float[] dUp);

    /// <summary>dst += src over count elements (the residual add, and gradients meeting).</summary>
    void Add(float[] dst, float[] src, int count);

    /// <summary>dst = a + b over count elements.</summary>
    void Sum(float[] a, float[] b, int count, float[] dst);

    /// <summary>
    /// Copies columns [sourceOffset, sourceOffset + width) of rows rows of a source [rows × sourceWidth] into columns
    /// [destinationOffset, ...) of a destination [rows × destinationWidth]: a fused Linear's output split into its
    /// parts, and the parts' gradients gathered into the fused one's.
    /// </summary>
    void CopyColumns(float[] source, int sourceWidth, int sourceOffset, float[] destination, int destinationWidth, int destinationOffset, int rows, int width);

    /// <summary>y[rows × out] = x[rows × in] · weightᵀ (+ bias) for an fp32 weight [out × in] (a trained one).</summary>
    void Linear(float[] x, int rows, float[] weight, int inFeatures, int outFeatures, float[]? bias, float[] y);

    /// <summary>
    /// Backward of the fp32 <see cref="Linear(float[], int, float[], int, int, float[], float[])"/>: weightGrad += dyᵀ·x
    /// and biasGrad += Σ dy where given; dx = dy·weight (added when accumulate) where given.
    /// </summary>
    void LinearBackward(float[] x, float[] dy, int rows, float[] weight, int inFeatures, int outFeatures,
        float[]? weightGrad, float[]? biasGrad, float[]? dx, bool accumulate);

    /// <summary>
    /// c[rows × n] = alpha · x[rows × k] · yᵀ for y [n × k] with n small (a rank: LoRA's x·Aᵀ and dy·B), as dot
    /// products of rows, which a packed GEMM would spend most of its time padding.
    /// </summary>
    void NarrowProduct(float[] x, int rows, int k, float[] y, int n, float alpha, float[] c);

    /// <summary>y[rows × bias.Length] += bias in every row.</summary>
    void AddBias(float[] y, int rows, float[] bias);

    /// <summary>sums[c] += Σ_r values[r, c] over rows rows of width sums.Length (a bias's gradient).</summary>
    void ColumnSums(float[] values, int rows, float[] sums);

    /// <summary>
    /// Causal grouped-query attention within each of the sequences (training): output = softmax(scale·q·kᵀ + mask)·v,
    /// keeping each query's log-sum-exp for <see cref="AttentionBackward"/>. shape gives the heads; the sequences
    /// where each one's rows are and which keys are masked.
    /// </summary>
    void AttentionForward(AttentionShape shape, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp);

    /// <summary>dq, dk, dv of <see cref="AttentionForward"/> from dOutput; the scratches are [rows × heads·headDim].</summary>
    void AttentionBackward(AttentionShape shape, AttentionSequences sequences, float[] q, float[] k, float[] v, float[] output, float[] logSumExp,
        float[] dOutput, float[] dq, float[] dk, float[] dv, float[] keyScratch, float[] valueScratch);

    /// <summary>
    /// One chunk of label-token log-probs (the cross-entropy chunk): logit row i [vocab wide] is token offset + i,
    /// whose log-softmax at targets[offset + i] is written to logProbs[offset + i]; with gradient (token, log-prob →
    /// upstream dLoss/d log p) the row is then overwritten with its logits' gradient, (onehot − softmax) · upstream.
    /// </summary>
    void LabelLogProbs(float[] logits, int rows, int vocab, int[] targets, int offset, double[] logProbs,
        Func<int, double, float>? gradient);

    /// <summary>
    /// Grouped-query attention of the new queries against the cached keys/values of one layer.
    /// q is [batch·newTokens × heads·headDim]; the new keys/values must already be in the cache.
    /// keyMask holds one row of maskStride bytes per sequence, 1 = attend and 0 = padding, for positions
    /// 0..cache.Length-1; queries also never see later positions.
    /// </summary>
    void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] keyMask, int maskStride, Tensor output);
}
