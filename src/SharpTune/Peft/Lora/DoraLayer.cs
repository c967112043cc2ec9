using System.Buffers;
using System.Numerics.Tensors;
using Tensor = SharpTune.Engine.Tensor;
using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Peft.Lora;

/// <summary>
/// PEFT's DoRA (LoRA with use_dora): a <see cref="LoraLayer"/> and a magnitude vector m [out]
/// (lora_magnitude_vector). Per output row the weight norm ‖W + s·B·A‖ is taken detached, as PEFT's DoraLinearLayer
/// does; with g = m / norm the output is y = base(x) + (g − 1)·(base(x) − bias) + g·s·B·A·x, and merged the weight is
/// g·(W + s·B·A). The norm depends on A and B only, which change once per optimizer step, so it is recomputed when
/// their values differ from those it was computed from rather than on every forward (the same numbers, fewer dense
/// products); W is read through the base Linear, dequantised on a quantised base as PEFT does.
/// Not thread-safe, like <see cref="LoraLayer"/>.
/// </summary>
public sealed unsafe class DoraLayer : ILinearTuner
{
    /// <summary>Rows of W + s·B·A formed at a time for the norm, so no whole dense copy of the weight is held.</summary>
    private const int NormTileRows = 64;

    public LoraLayer Lora { get; }
    public Parameter Magnitude { get; }
    public string ModulePath => Lora.ModulePath;
    public int InFeatures => Lora.InFeatures;
    public int OutFeatures => Lora.OutFeatures;
    public IReadOnlyList<Parameter> Parameters { get; }

    private readonly IComputeBackend _backend;
    private ILinearBase? _base;
    /// <summary>‖W + s·B·A‖ per output row, and the A and B it was computed from.</summary>
    private readonly float[] _norm;
    private float[] _normA = [], _normB = [];
    private readonly float[] _scale;
    /// <summary>s·B·A·x of the last forward; the backward reuses it as scratch.</summary>
    private Tensor _lora;
    /// <summary>(base(x) − bias + s·B·A·x) / norm of the last training forward: dL/dm = Σ over rows of dy times it.</summary>
    private Tensor _magnitudeInput;
    /// <summary>dL/dx of the base term on the dropped-out input, before the mask (with lora_dropout only).</summary>
    private Tensor _dxDropped;
    /// <summary>The row factors m / norm of the last <see cref="MergeInto"/>, which <see cref="UnmergeFrom"/> divides out.</summary>
    private float[]? _mergeFactors;

    public DoraLayer(LoraLayer lora, float[] magnitude, IComputeBackend backend)
    {
        if (magnitude.Length != lora.OutFeatures)
            throw new ArgumentException($"{lora.ModulePath}: lora_magnitude_vector has {magnitude.Length} values, the Linear has {lora.OutFeatures} outputs");
        Lora = lora;
        Magnitude = new Parameter(LoraAdapterFile.KeyMagnitude(lora.ModulePath), [lora.OutFeatures], magnitude) { WeightDecay = true };
        Parameters = [lora.A, lora.B, Magnitude];
        _backend = backend;
        _norm = new float[lora.OutFeatures];
        _scale = new float[lora.OutFeatures];
        _lora = _magnitudeInput = _dxDropped = backend.Allocate(0, 0);
    }

    /// <summary>
    /// DoRA computes its base term from base(x) − bias, which is the base's product only when no other tuner has
    /// changed y or x before it; PEFT stacks adapters by merging the earlier ones into W first, so a DoRA layer after
    /// another tuner is refused rather than computed on the wrong weight.
    /// </summary>
    public void AttachTo(ILinearBase linear, IReadOnlyList<ILinearTuner> applied)
    {
        if (linear.InFeatures != InFeatures || linear.OutFeatures != OutFeatures)
            throw new InvalidOperationException($"{ModulePath}: the DoRA layer is {OutFeatures}×{InFeatures}, the Linear is {linear.OutFeatures}×{linear.InFeatures}");
        if (applied.Count > 0)
            throw new InvalidOperationException(
                $"{ModulePath}: a DoRA adapter cannot be stacked unmerged on another adapter: its weight norm is taken over the weight " +
                "the earlier adapters change, as PEFT merges them first; merge the earlier adapters into the base (sharptune export) and apply the DoRA adapter to that");
        _base = linear;
    }

    /// <summary>
    /// Bytes a DoRA layer keeps beyond its <see cref="LoraLayer"/> for batches of <paramref name="rows"/> rows: the
    /// s·B·A·x and magnitude-gradient buffers [rows × out], the norm and scale, and the A and B the norm was taken at.
    /// </summary>
    public static long CacheBytes(int rows, int rank, int inFeatures, int outFeatures) =>
        sizeof(float) * (2L * rows * outFeatures + 2L * outFeatures + (long)rank * (inFeatures + outFeatures));

    /// <summary>PEFT's initialisation: m = ‖W + s·B·A‖ per row, so that a fresh adapter leaves the output unchanged.</summary>
    public void InitializeMagnitude()
    {
        RefreshNorm();
        _norm.CopyTo(Magnitude.Data, 0);
    }

    /// <summary>
    /// With lora_dropout in a training pass PEFT's DoRA takes its base term from the dropped-out input,
    /// base = dropout(x)·Wᵀ, one more product with W; otherwise base = y − bias, the product already made.
    /// </summary>
    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        RefreshNorm();
        int outFeatures = OutFeatures, n = rows * outFeatures;
        if (_lora.Length < n) _lora = _backend.Allocate(rows, outFeatures);
        bool keep = pass != TunerPass.Evaluate;
        if (keep && _magnitudeInput.Length < n) _magnitudeInput = _backend.Allocate(rows, outFeatures);
        _backend.ClearRows(_lora, 0, rows);
        Lora.Forward(x, rows, _lora, pass, random);
        var m = Magnitude.Data;
        for (int o = 0; o < outFeatures; o++) _scale[o] = m[o] / _norm[o];
        bool dropped = DropsInput(pass);
        if (dropped) _base!.Multiply(Lora.DroppedInput(x), rows, _magnitudeInput);
        _backend.DoraCombine(y, _lora, dropped ? _magnitudeInput : null, _base!.Bias, rows, _scale, _norm, keep ? _magnitudeInput : null);
    }

    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx)
    {
        int n = rows * OutFeatures;
        var scaled = _lora;
        // The LoRA product sees dy·g.
        _backend.ScaleColumns(dy, rows, _scale, scaled);
        Lora.Backward(x, scaled, rows, dx);
        // dL/dm = Σ_rows dy ⊙ (base + s·B·A·x) / norm (the norm detached).
        _backend.Multiply(dy, _magnitudeInput, n, _magnitudeInput);
        _backend.ColumnSums(_magnitudeInput, rows, Magnitude.Grad);
        if (dx is null) return;
        // The base already passed dy·W; its term is scaled by g, so (g − 1)·dy goes through W as well (through the
        // dropout mask when the term took the dropped-out input).
        _backend.ScaleColumns(dy, rows, _scale, scaled);
        _backend.Subtract(scaled, dy, n, scaled);
        if (Lora.Dropout == 0)
        {
            _base!.AddInputGradient(scaled, rows, dx);
            return;
        }
        int inputs = rows * InFeatures;
        if (_dxDropped.Length < inputs) _dxDropped = _backend.Allocate(rows, InFeatures);
        _backend.ClearRows(_dxDropped, 0, rows);
        _base!.AddInputGradient(scaled, rows, _dxDropped);
        _backend.Multiply(_dxDropped, Lora.DropoutMask, inputs, _dxDropped);
        _backend.Add(dx, _dxDropped, inputs);
    }

    private bool DropsInput(TunerPass pass) => Lora.Dropout > 0 && pass != TunerPass.Evaluate;

    /// <summary>W' = (m / ‖W + s·B·A‖)·(W + s·B·A), each row scaled by its factor (PEFT's DoRA merge).</summary>
    public void MergeInto(float[] weight, float[]? bias)
    {
        Lora.MergeInto(weight, bias);
        var factors = new float[OutFeatures];
        for (int o = 0; o < OutFeatures; o++)
        {
            var row = weight.AsSpan(o * InFeatures, InFeatures);
            factors[o] = Magnitude.Data[o] / RowNorm(row);
            TensorPrimitives.Multiply(row, factors[o], row);
        }
        _mergeFactors = factors;
    }

    /// <summary>Divides the merged rows by the factors of the last merge, then takes s·B·A out (PEFT's unmerge).</summary>
    public void UnmergeFrom(float[] weight, float[]? bias)
    {
        var factors = _mergeFactors ?? throw new InvalidOperationException($"{ModulePath}: the DoRA layer was not merged into a weight, so there is nothing to unmerge");
        for (int o = 0; o < OutFeatures; o++)
        {
            var row = weight.AsSpan(o * InFeatures, InFeatures);
            TensorPrimitives.Divide(row, factors[o], row);
        }
        Lora.UnmergeFrom(weight, bias);
        _mergeFactors = null;
    }

    /// <summary>‖W + s·B·A‖ per row through the backend, tile by tile, when A or B differ from the values it was taken at.</summary>
    private void RefreshNorm()
    {
        var linear = _base ?? throw new InvalidOperationException($"{ModulePath}: the DoRA layer is not attached to a Linear");
        float[] a = Lora.A.Data, b = Lora.B.Data;
        if (_normA.AsSpan().SequenceEqual(a) && _normB.AsSpan().SequenceEqual(b)) return;
        int inFeatures = InFeatures, rank = Lora.Rank;
        var tile = ArrayPool<float>.Shared.Rent(NormTileRows * inFeatures);
        try
        {
            for (int first = 0; first < OutFeatures; first += NormTileRows)
            {
                int count = Math.Min(NormTileRows, OutFeatures - first);
                linear.ReadWeightRows(first, count, tile.AsSpan(0, count * inFeatures));
                fixed (float* pb = &b[first * rank], pa = a, pt = tile)
                    _backend.Gemm.Sgemm(false, false, count, inFeatures, rank, Lora.Scaling, pb, rank, pa, inFeatures, 1f, pt, inFeatures);
                for (int o = 0; o < count; o++) _norm[first + o] = RowNorm(tile.AsSpan(o * inFeatures, inFeatures));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(tile);
        }
        if (_normA.Length != a.Length) _normA = new float[a.Length];
        if (_normB.Length != b.Length) _normB = new float[b.Length];
        a.CopyTo(_normA, 0);
        b.CopyTo(_normB, 0);
    }

    /// <summary>The Euclidean norm of a row, summed in double.</summary>
    private static float RowNorm(ReadOnlySpan<float> row)
    {
        double sum = 0;
        foreach (float v in row) sum += (double)v * v;
        return (float)Math.Sqrt(sum);
    }
}
