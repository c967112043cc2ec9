namespace SharpTune.Engine;

/// <summary>
/// Everything the decoder computes, expressed as whole-tensor operations. Model code talks only to this
/// interface, so another device (a CUDA backend, say) implements these methods over its own buffers without
/// the model changing. Rows are the flattened (batch × time) positions of a [rows × width] activation.
/// <para>
/// The backend owns the activations: every activation, activation gradient, scratch and KV cache is a
/// <see cref="Tensor"/> it allocated, and the host reads or writes one only through <see cref="CopyToHost"/> and
/// <see cref="CopyFromHost"/> (a device backend's memcpy over the bus). Parameters — trained fp32 weights, biases,
/// norm weights and their gradients, which the host optimizers update — are host <c>float[]</c> arguments, and frozen
/// matrices are <see cref="WeightMatrix"/>/<see cref="IFrozenMatrix"/>: a device backend mirrors those itself.
/// Token ids, positions and masks come in as host spans.
/// </para>
/// </summary>
public interface IComputeBackend
{
    /// <summary>One-line description for start-up reporting, e.g. "cpu, gemm: onednn, 2 threads".</summary>
    string Describe();

    /// <summary>The matrix-multiply kernel behind this backend, for products of parameters alone (merging an adapter into a weight).</summary>
    IGemmKernel Gemm { get; }

    /// <summary>A zeroed tensor of this backend.</summary>
    Tensor Allocate(params int[] shape);

    /// <summary>Reads destination.Length values of source from sourceOffset into host memory.</summary>
    void CopyToHost(Tensor source, long sourceOffset, Span<float> destination);

    /// <summary>Writes host values into destination from destinationOffset.</summary>
    void CopyFromHost(ReadOnlySpan<float> source, Tensor destination, long destinationOffset);

    /// <summary>Copies count rows of source from sourceRow to destination's rows from destinationRow (the same width).</summary>
    void CopyRows(Tensor source, int sourceRow, Tensor destination, int destinationRow, int count);

    /// <summary>Adds count rows of source from sourceRow to destination's rows from destinationRow (the same width).</summary>
    void AddRows(Tensor source, int sourceRow, Tensor destination, int destinationRow, int count);

    /// <summary>Adds count rows of source from sourceRow to a parameter's gradient [n × width] from its row parameterRow.</summary>
    void AddRowsToParameter(Tensor source, int sourceRow, float[] parameterGrad, int parameterRow, int count);

    /// <summary>Multiplies count rows from row by factor, in place.</summary>
    void ScaleRows(Tensor x, int row, int count, float factor);

    /// <summary>Zeroes count rows from row.</summary>
    void ClearRows(Tensor x, int row, int count);

    /// <summary>sums[r] = Σ_c x[r, c] for the first sums.Length rows, read back to the host.</summary>
    void RowSums(Tensor x, Span<float> sums);

    /// <summary>y[rows × w.Rows] = x[rows × w.Cols] · wᵀ (+ bias).</summary>
    void Linear(Tensor x, int rows, WeightMatrix w, float[]? bias, Tensor y);

    /// <summary>y[rows × w.Rows] = x[rows × w.Cols] · wᵀ (+ bias) for a compact frozen matrix (quantised weights).</summary>
    void Linear(Tensor x, int rows, IFrozenMatrix w, float[]? bias, Tensor y);

    /// <summary>dx[rows × w.Cols] = dy[rows × w.Rows] · w, added to dx when accumulate: the input gradient of a frozen matrix.</summary>
    void LinearInputGradient(Tensor dy, int rows, IFrozenMatrix w, Tensor dx, bool accumulate);

    /// <summary>dst[i] = table[ids[i]] (a row gather with widening to fp32).</summary>
    void Embedding(WeightMatrix table, ReadOnlySpan<int> ids, Tensor dst);

    /// <summary>dst[i] = table[ids[i]] for a compact frozen table.</summary>
    void Embedding(IFrozenMatrix table, ReadOnlySpan<int> ids, Tensor dst);

    /// <summary>dst[i] = table[ids[i]] for an fp32 table [vocab × dst.RowWidth] (a trained embedding).</summary>
    void Embedding(float[] table, ReadOnlySpan<int> ids, Tensor dst);

    /// <summary>Backward of the embedding: tableGrad[ids[i]] += dOutput[i] for each row i of width values.</summary>
    void EmbeddingBackward(Tensor dOutput, ReadOnlySpan<int> ids, int width, float[] tableGrad);

    /// <summary>
    /// RMSNorm over groups of weight.Length values (a row, or a head for q/k norms): y = weight ⊙ x / sqrt(mean(x²) + eps),
    /// y may be x. inverseRms, when given, receives 1/rms per group for the backward.
    /// </summary>
    void RmsNorm(Tensor x, int groups, float[] weight, float eps, Tensor y, Tensor? inverseRms = null);

    /// <summary>
    /// Backward of <see cref="RmsNorm"/>: dx (may be dy) from dy, and weightGrad += Σ dy ⊙ x̂ when given; either
    /// may be null when not wanted.
    /// </summary>
    void RmsNormBackward(Tensor x, Tensor dy, int groups, float[] weight, Tensor inverseRms, Tensor? dx, float[]? weightGrad);

    /// <summary>
    /// Rotary position embedding applied in place to each head of each of rows rows at their positions, on the
    /// dimensions and in the pairing the table gives (rotate_half, or ChatGLM's interleaved pairs on part of a head);
    /// inverse rotates back, which is its backward.
    /// </summary>
    void Rope(Tensor x, int rows, int heads, RopeTable rope, ReadOnlySpan<int> positions, bool inverse = false);

    /// <summary>dst = silu(gate) ⊙ up over count elements; dst may be gate.</summary>
    void SiluMul(Tensor gate, Tensor up, int count, Tensor dst);

    /// <summary>Backward of <see cref="SiluMul"/>: dGate and dUp from dActivation.</summary>
    void SiluMulBackward(Tensor gate, Tensor up, Tensor dActivation, int count, Tensor dGate, Tensor dUp);

    /// <summary>dst += src over count elements (the residual add, and gradients meeting).</summary>
    void Add(Tensor dst, Tensor src, int count);

    /// <summary>dst = a + b over count elements.</summary>
    void Sum(Tensor a, Tensor b, int count, Tensor dst);

    /// <summary>dst = a ⊙ b over count elements (a dropout mask applied); dst may be a.</summary>
    void Multiply(Tensor a, Tensor b, int count, Tensor dst);

    /// <summary>dst = a − b over count elements.</summary>
    void Subtract(Tensor a, Tensor b, int count, Tensor dst);

    /// <summary>
    /// Copies columns [sourceOffset, sourceOffset + width) of rows rows of source into columns [destinationOffset, ...)
    /// of destination, each with its own row width: a fused Linear's output split into its parts, and the parts'
    /// gradients gathered into the fused one's.
    /// </summary>
    void CopyColumns(Tensor source, int sourceOffset, Tensor destination, int destinationOffset, int rows, int width);

    /// <summary>y[rows × out] = x[rows × in] · weightᵀ (+ bias) for an fp32 weight [out × in] (a trained one).</summary>
    void Linear(Tensor x, int rows, float[] weight, int inFeatures, int outFeatures, float[]? bias, Tensor y);

    /// <summary>
    /// Backward of the fp32 <see cref="Linear(Tensor, int, float[], int, int, float[], Tensor)"/>: weightGrad += dyᵀ·x
    /// and biasGrad += Σ dy where given; dx = dy·weight (added when accumulate) where given.
    /// </summary>
    void LinearBackward(Tensor x, Tensor dy, int rows, float[] weight, int inFeatures, int outFeatures,
        float[]? weightGrad, float[]? biasGrad, Tensor? dx, bool accumulate);

    /// <summary>
    /// c[rows × n] = alpha · x[rows × k] · yᵀ for y [n × k] with n small (a rank: LoRA's x·Aᵀ and dy·B), as dot
    /// products of rows, which a packed GEMM would spend most of its time padding.
    /// </summary>
    void NarrowProduct(Tensor x, int rows, int k, float[] y, int n, float alpha, Tensor c);

    /// <summary>c[rows × n] = alpha · a[rows × k] · bᵀ + beta · c for a parameter b [n × k] (LoRA's B, an adapter's up projection).</summary>
    void MultiplyTransposed(Tensor a, int rows, int k, float[] b, int n, float alpha, float beta, Tensor c);

    /// <summary>c[rows × n] = alpha · a[rows × k] · b + beta · c for a parameter b [k × n] (LoRA's dx = dxa·A).</summary>
    void Multiply(Tensor a, int rows, int k, float[] b, int n, float alpha, float beta, Tensor c);

    /// <summary>grad[m × n] += alpha · aᵀ · b for a [rows × m] and b [rows × n]: a low-rank parameter's gradient.</summary>
    void AddOuterProducts(Tensor a, Tensor b, int rows, int m, int n, float alpha, float[] grad);

    /// <summary>y[rows × bias.Length] += bias in every row.</summary>
    void AddBias(Tensor y, int rows, float[] bias);

    /// <summary>sums[c] += Σ_r values[r, c] over rows rows of width sums.Length (a bias's gradient).</summary>
    void ColumnSums(Tensor values, int rows, float[] sums);

    /// <summary>dst[r, c] = x[r, c] · factors[c] over rows rows of width factors.Length (IA3's scaling); dst may be x.</summary>
    void ScaleColumns(Tensor x, int rows, float[] factors, Tensor dst);

    /// <summary>grad[c] += Σ_r a[r, c] · b[r, c], row after row, over rows rows of width grad.Length (IA3's gradient).</summary>
    void AddColumnProducts(Tensor a, Tensor b, int rows, float[] grad);

    /// <summary>a = f(z) over count elements (a bottleneck adapter's activation).</summary>
    void Activate(ActivationFunction function, Tensor z, int count, Tensor a);

    /// <summary>d ⊙= f′(z) over count elements: the backward of <see cref="Activate"/>.</summary>
    void MultiplyByDerivative(ActivationFunction function, Tensor z, int count, Tensor d);

    /// <summary>
    /// DoRA's output over rows rows of width scale.Length: with base = baseProduct when given (the base product of the
    /// dropped-out input), else y − bias, y += (scale − 1) ⊙ base + scale ⊙ lora per row, and, when magnitudeInput is
    /// given, magnitudeInput = (base + lora) / norm for the magnitude's gradient.
    /// </summary>
    void DoraCombine(Tensor y, Tensor lora, Tensor? baseProduct, float[]? bias, int rows, float[] scale, float[] norm, Tensor? magnitudeInput);

    /// <summary>
    /// Causal grouped-query attention within each of the sequences (training): output = softmax(scale·q·kᵀ + mask)·v,
    /// keeping each query's log-sum-exp for <see cref="AttentionBackward"/>. shape gives the heads; the sequences
    /// where each one's rows are and which keys are masked.
    /// </summary>
    void AttentionForward(AttentionShape shape, AttentionSequences sequences, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp);

    /// <summary>dq, dk, dv of <see cref="AttentionForward"/> from dOutput; the scratches are [rows × heads·headDim].</summary>
    void AttentionBackward(AttentionShape shape, AttentionSequences sequences, Tensor q, Tensor k, Tensor v, Tensor output, Tensor logSumExp,
        Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, Tensor keyScratch, Tensor valueScratch);

    /// <summary>
    /// One chunk of label-token log-probs (the cross-entropy chunk): logit row i [vocab wide] is token offset + i,
    /// whose log-softmax at targets[offset + i] is written to the host's logProbs[offset + i]; with gradient (token,
    /// log-prob → upstream dLoss/d log p) the row is then overwritten with its logits' gradient, (onehot − softmax) · upstream.
    /// </summary>
    void LabelLogProbs(Tensor logits, int rows, int vocab, int[] targets, int offset, double[] logProbs,
        Func<int, double, float>? gradient);

    /// <summary>A KV cache layer of this backend, its keys and values [batch × kvHeads × capacity × headDim] zeroed.</summary>
    KvCacheLayer AllocateCache(int batch, int kvHeads, int headDim, int capacity);

    /// <summary>
    /// Stores the new tokens' keys and values (k, v: [batch·newTokens × kvHeads·headDim]) at positions cache.Length..
    /// and advances cache.Length.
    /// </summary>
    void AppendToCache(KvCacheLayer cache, Tensor k, Tensor v, int newTokens);

    /// <summary>
    /// Grouped-query attention of the new queries against the cached keys/values of one layer.
    /// q is [batch·newTokens × heads·headDim]; the new keys/values must already be in the cache.
    /// keyMask holds one row of maskStride bytes per sequence, 1 = attend and 0 = padding, for positions
    /// 0..cache.Length-1; queries also never see later positions.
    /// </summary>
    void Attention(Tensor q, KvCacheLayer cache, int batch, int newTokens, byte[] keyMask, int maskStride, Tensor output);
}

/// <summary>An elementwise activation a backend computes (<see cref="IComputeBackend.Activate"/>).</summary>
public enum ActivationFunction
{
    /// <summary>z · sigmoid(z), computed as z / (1 + e^−z).</summary>
    Swish,
    Relu,
}
