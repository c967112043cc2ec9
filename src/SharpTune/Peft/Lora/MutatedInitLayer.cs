using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Peft.Lora;

/// <summary>
/// A LoRA layer whose initialisation was taken from the base weight and subtracted from it (PEFT's PiSSA and OLoRA,
/// init_lora_weights "pissa", "pissa_niter_N", "olora"): the run trains on the residual W − s·B₀·A₀, where B₀·A₀ is
/// the initial adapter. The residual is kept as a frozen low-rank term rather than as a changed copy of W, so the
/// base stays as stored (no fp32 copy, the same weights for every use): the projection computes
/// W·x − s·B₀·A₀·x + s·B·A·x, with B₀ and A₀ recomputed from W when the layer is attached (deterministic, so a saved
/// adapter reloads onto the original base exactly), and merging folds in both terms, which is also what PEFT's
/// conversion to a plain LoRA ([B, −B₀]·[A; A₀], rank 2r) computes.
/// </summary>
public sealed class MutatedInitLayer : ILinearTuner
{
    public LoraLayer Lora { get; }
    /// <summary>The init_lora_weights value that made the initial adapter.</summary>
    public string Init { get; }
    public string ModulePath => Lora.ModulePath;
    public int InFeatures => Lora.InFeatures;
    public int OutFeatures => Lora.OutFeatures;
    public IReadOnlyList<Parameter> Parameters => Lora.Parameters;

    private readonly IComputeBackend _backend;
    /// <summary>−s·B₀·A₀ as a frozen LoRA layer without dropout (the residual's term sees the undropped input, like W).</summary>
    private LoraLayer? _initial;

    /// <param name="initial">B₀ and A₀ when already computed from the same base (a new run), else null to compute them on attach.</param>
    public MutatedInitLayer(LoraLayer lora, string init, IComputeBackend backend, (float[] A, float[] B)? initial = null)
    {
        Lora = lora;
        Init = init;
        _backend = backend;
        if (initial is { } pair) _initial = Frozen(pair);
    }

    /// <summary>Bytes the frozen −s·B₀·A₀ term keeps beyond the trained <see cref="LoraLayer"/>: B₀, A₀ and their layer's caches (no dropout).</summary>
    public static long CacheBytes(int rows, int rank, int inFeatures, int outFeatures) =>
        sizeof(float) * (long)rank * (inFeatures + outFeatures) + LoraLayer.CacheBytes(rows, rank, inFeatures, outFeatures, 0f);

    /// <summary>The initial adapter (A₀, B₀) this layer's residual subtracts.</summary>
    public (float[] A, float[] B) Initial => _initial is { } layer
        ? (layer.A.Data, layer.B.Data)
        : throw new InvalidOperationException($"{ModulePath}: the initial adapter is known once the layer is attached to its base weight");

    public void AttachTo(ILinearBase linear, IReadOnlyList<ILinearTuner> applied)
    {
        if (applied.Count > 0)
            throw new InvalidOperationException(
                $"{ModulePath}: an adapter initialised with init_lora_weights {Init} cannot be stacked unmerged on another adapter: its initial adapter is " +
                "computed from the weight it was trained on, which the earlier adapters change; merge them into the base first (sharptune export)");
        if (_initial is not null) return;
        var weight = new float[OutFeatures * InFeatures];
        linear.ReadWeightRows(0, OutFeatures, weight);
        _initial = Frozen(LoraInitialization.Initial(Init, weight, OutFeatures, InFeatures, Lora.Rank, Lora.Scaling, ModulePath, _backend));
    }

    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        Attached.Forward(x, rows, y, pass, random);
        Lora.Forward(x, rows, y, pass, random);
    }

    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx)
    {
        Attached.Backward(x, dy, rows, dx);
        Lora.Backward(x, dy, rows, dx);
    }

    /// <summary>W − s·B₀·A₀ + s·B·A; unattached, the initial adapter is taken from the weight being merged into.</summary>
    public void MergeInto(float[] weight, float[]? bias)
    {
        _initial ??= Frozen(LoraInitialization.Initial(Init, weight, OutFeatures, InFeatures, Lora.Rank, Lora.Scaling, ModulePath, _backend));
        _initial.MergeInto(weight, bias);
        Lora.MergeInto(weight, bias);
    }

    public void UnmergeFrom(float[] weight, float[]? bias)
    {
        Lora.UnmergeFrom(weight, bias);
        Attached.UnmergeFrom(weight, bias);
    }

    /// <summary>PEFT's conversion to a plain LoRA of rank 2r on the original base: A' = [A; A₀], B' = [B, −B₀].</summary>
    public LoraPair Converted()
    {
        var (a0, b0) = Initial;
        int rank = Lora.Rank, inFeatures = InFeatures, outFeatures = OutFeatures;
        var a = new float[2 * rank * inFeatures];
        Lora.A.Data.CopyTo(a, 0);
        a0.CopyTo(a, rank * inFeatures);
        var b = new float[outFeatures * 2 * rank];
        for (int o = 0; o < outFeatures; o++)
            for (int j = 0; j < rank; j++)
            {
                b[o * 2 * rank + j] = Lora.B.Data[o * rank + j];
                b[o * 2 * rank + rank + j] = -b0[o * rank + j];
            }
        return new LoraPair(ModulePath, a, b, 2 * rank, inFeatures, outFeatures);
    }

    private LoraLayer Attached => _initial ?? throw new InvalidOperationException($"{ModulePath}: the layer is not attached to its base weight");

    private LoraLayer Frozen((float[] A, float[] B) initial) =>
        new(ModulePath, Lora.Rank, InFeatures, OutFeatures, -Lora.Scaling, 0f, initial.A, initial.B, _backend) { Frozen = true };
}
