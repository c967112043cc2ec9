using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training;

namespace SharpTune.Peft.Lora;

/// <summary>
/// PEFT's LoRA layer on one Linear: y += s · (dropout(x) · Aᵀ) · Bᵀ with A [r × in], B [out × r], s = alpha/r
/// (alpha/√r with rsLoRA). The one LoRA of SharpTune: trained (forward and backward side by side; the dropout mask of
/// a training pass is kept so that gradient checkpointing's recomputation sees the same mask), applied unmerged for
/// inference (an evaluation pass: no dropout, nothing kept), and merged into a weight for export. Its products run on
/// the compute backend of the model it is injected into.
/// Not thread-safe: its caches are buffers of this instance, like the model's own workspace.
/// </summary>
public sealed unsafe class LoraLayer : ILinearTuner
{
    public string ModulePath { get; }
    public int Rank { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public float Scaling { get; }
    public float Dropout { get; }
    public Parameter A { get; }
    public Parameter B { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>A fixed low-rank term (a <see cref="MutatedInitLayer"/>'s −s·B₀·A₀): its backward gives dL/dx only.</summary>
    public bool Frozen { get; init; }

    private readonly IComputeBackend _backend;
    // Backend tensors, empty until EnsureCapacity sizes them for a pass.
    private Tensor _xa, _dxa, _mask, _dropped, _dxScratch;
    /// <summary>Mask values a training pass draws on the host before each copy to the backend.</summary>
    private const int MaskChunk = 4096;
    /// <summary>
    /// Bᵀ [r × out], refreshed by every training forward, so the backward's dy·B is a product of stored rows; an
    /// evaluation pass has no backward and leaves it alone.
    /// </summary>
    private float[] _bTransposed = [];

    /// <summary>A layer of a saved adapter (A and B as the file holds them).</summary>
    public LoraLayer(LoraPair pair, float scaling, float dropout, IComputeBackend backend)
        : this(pair.ModulePath, pair.Rank, pair.InFeatures, pair.OutFeatures, scaling, dropout, pair.A, pair.B, backend)
    {
    }

    public LoraLayer(string modulePath, int rank, int inFeatures, int outFeatures, float scaling, float dropout, float[] a, float[] b,
        IComputeBackend backend)
    {
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), $"lora_dropout must lie in [0, 1), got {dropout}");
        ModulePath = modulePath;
        Rank = rank;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Scaling = scaling;
        Dropout = dropout;
        A = new Parameter(LoraAdapterFile.KeyA(modulePath), [rank, inFeatures], a);
        B = new Parameter(LoraAdapterFile.KeyB(modulePath), [outFeatures, rank], b);
        Parameters = [A, B];
        _backend = backend;
        _xa = _dxa = _mask = _dropped = _dxScratch = backend.Allocate(0, 0);
    }

    /// <summary>
    /// The tuner of a saved pair under its adapter's config: a <see cref="DoraLayer"/> when the pair has a magnitude
    /// vector, a <see cref="MutatedInitLayer"/> when init_lora_weights took the adapter from the base, else the LoRA
    /// layer itself.
    /// </summary>
    /// <exception cref="InvalidDataException">DoRA together with a base-changing initialisation.</exception>
    public static ILinearTuner ForPair(LoraPair pair, LoraConfig config, IComputeBackend backend)
    {
        var lora = new LoraLayer(pair, (float)config.Scaling, (float)config.Dropout, backend);
        if (LoraInitialization.MutatesBase(config.InitLoraWeights))
            return pair.Magnitude is null
                ? new MutatedInitLayer(lora, config.InitLoraWeights!, backend)
                : throw new InvalidDataException($"{pair.ModulePath}: DoRA with init_lora_weights {config.InitLoraWeights} is not supported: the DoRA norm would be taken over the residual base");
        return pair.Magnitude is null ? lora : new DoraLayer(lora, pair.Magnitude, backend);
    }

    /// <summary>PEFT's initialisation: A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), B = 0.</summary>
    public static LoraLayer CreateNew(string modulePath, int inFeatures, int outFeatures, int rank, float scaling, float dropout, SeededRandom random,
        IComputeBackend backend)
    {
        var a = new float[rank * inFeatures];
        double bound = 1.0 / Math.Sqrt(inFeatures);
        for (int i = 0; i < a.Length; i++) a[i] = (float)((2 * random.NextDouble() - 1) * bound);
        return new LoraLayer(modulePath, rank, inFeatures, outFeatures, scaling, dropout, a, new float[outFeatures * rank], backend);
    }

    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        EnsureCapacity(rows, pass);
        Tensor input = x;
        if (Dropout > 0 && pass != TunerPass.Evaluate)
        {
            int n = rows * InFeatures;
            if (pass == TunerPass.Train)
            {
                if (random is null) throw new ArgumentNullException(nameof(random), "a training pass with LoRA dropout needs a random generator");
                // The mask is drawn on the host from the run's seeded generator and copied to the backend a chunk at
                // a time, so no host copy of the whole mask is kept.
                float keep = 1f / (1f - Dropout);
                Span<float> chunk = stackalloc float[MaskChunk];
                for (int start = 0; start < n; start += MaskChunk)
                {
                    int length = Math.Min(MaskChunk, n - start);
                    for (int i = 0; i < length; i++) chunk[i] = random.NextFloat() < Dropout ? 0f : keep;
                    _backend.CopyFromHost(chunk[..length], _mask, start);
                }
            }
            _backend.Multiply(x, _mask, n, _dropped);
            input = _dropped;
        }
        if (pass != TunerPass.Evaluate)
        {
            if (_bTransposed.Length == 0) _bTransposed = new float[Rank * OutFeatures];
            var b = B.Data;
            for (int o = 0; o < OutFeatures; o++)
                for (int j = 0; j < Rank; j++) _bTransposed[j * OutFeatures + o] = b[o * Rank + j];
        }
        _backend.NarrowProduct(input, rows, InFeatures, A.Data, Rank, 1f, _xa);
        _backend.MultiplyTransposed(_xa, rows, Rank, B.Data, OutFeatures, Scaling, 1f, y);
    }

    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx)
    {
        Tensor input = Dropout > 0 ? _dropped : x;
        _backend.NarrowProduct(dy, rows, OutFeatures, _bTransposed, Rank, Scaling, _dxa);
        if (!Frozen)
        {
            _backend.AddOuterProducts(dy, _xa, rows, OutFeatures, Rank, Scaling, B.Grad);
            _backend.AddOuterProducts(_dxa, input, rows, Rank, InFeatures, 1f, A.Grad);
        }
        if (dx is null) return;
        if (Dropout == 0)
        {
            _backend.Multiply(_dxa, rows, Rank, A.Data, InFeatures, 1f, 1f, dx);
            return;
        }
        int n = rows * InFeatures;
        _backend.Multiply(_dxa, rows, Rank, A.Data, InFeatures, 1f, 0f, _dxScratch);
        _backend.Multiply(_dxScratch, _mask, n, _dxScratch);
        _backend.Add(dx, _dxScratch, n);
    }

    /// <summary>
    /// The input the last training or recomputing pass multiplied by A: x with its dropout mask applied, or x itself
    /// without dropout (DoRA's base term uses the same dropped-out input, as PEFT's does).
    /// </summary>
    internal Tensor DroppedInput(Tensor x) => Dropout > 0 ? _dropped : x;

    /// <summary>The last training pass's dropout mask (0 or 1/(1 − p) per input value); only with dropout.</summary>
    internal Tensor DropoutMask => _mask;

    /// <summary>W += s · B · A in fp32, folding the layer into its Linear's weight [out × in]; the bias is unchanged.</summary>
    public void MergeInto(float[] weight, float[]? bias) => AddScaledProduct(weight, Scaling);

    /// <summary>W −= s · B · A: the merged layer taken out again (exact up to fp32 rounding).</summary>
    public void UnmergeFrom(float[] weight, float[]? bias) => AddScaledProduct(weight, -Scaling);

    private void AddScaledProduct(float[] weight, float factor)
    {
        if (weight.Length != (long)OutFeatures * InFeatures)
            throw new ArgumentException($"{ModulePath}: weight has {weight.Length} values, lora_B·lora_A is [{OutFeatures}, {InFeatures}]");
        fixed (float* pw = weight, pa = A.Data, pb = B.Data)
            _backend.Gemm.Sgemm(false, false, OutFeatures, InFeatures, Rank, factor, pb, Rank, pa, InFeatures, 1f, pw, InFeatures);
    }

    /// <summary>
    /// Bytes an adapter keeps for batches of <paramref name="rows"/> rows: Bᵀ, and the caches <see cref="EnsureCapacity"/>
    /// sizes (x·Aᵀ and its gradient; with dropout the mask, the dropped input and the dx scratch).
    /// </summary>
    public static long CacheBytes(int rows, int rank, int inFeatures, int outFeatures, float dropout)
    {
        var (lowRank, input) = CacheLengths(rows, rank, inFeatures, dropout);
        return sizeof(float) * (2 * lowRank + 3 * input + (long)rank * outFeatures);
    }

    /// <summary>The length of each low-rank cache and of each dropout cache (0 without dropout) for rows rows.</summary>
    private static (long LowRank, long Input) CacheLengths(int rows, int rank, int inFeatures, float dropout) =>
        ((long)rows * rank, dropout > 0 ? (long)rows * inFeatures : 0);

    /// <summary>
    /// Grows the caches for rows rows: an evaluation pass (unmerged inference, evaluation) needs only x·Aᵀ; the
    /// backward's and dropout's caches are made by the first training pass, so an adapter loaded for serving never
    /// holds them.
    /// </summary>
    private void EnsureCapacity(int rows, TunerPass pass)
    {
        var (lowRank, input) = CacheLengths(rows, Rank, InFeatures, Dropout);
        if (_xa.Length < lowRank) _xa = _backend.Allocate(rows, Rank);
        if (pass == TunerPass.Evaluate || _dxa.Length >= lowRank) return;
        _dxa = _backend.Allocate(rows, Rank);
        if (input > 0)
        {
            _mask = _backend.Allocate(rows, InFeatures);
            _dropped = _backend.Allocate(rows, InFeatures);
            _dxScratch = _backend.Allocate(rows, InFeatures);
        }
    }

}
