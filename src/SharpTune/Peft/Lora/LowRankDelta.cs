using SharpTune.Engine;

namespace SharpTune.Peft.Lora;

/// <summary>
/// One unmerged LoRA update of a Linear: y += scaling · (x·Aᵀ)·Bᵀ, as PEFT's LoRA layer adds it to the base
/// layer's output (dropout is the identity at inference). Computed as two skinny GEMMs through the backend's kernel,
/// so the base weight stays untouched and several adapters can stack on one layer.
/// Not thread-safe: the [rows × r] intermediate is a buffer of this instance, like the model's own workspace.
/// </summary>
public sealed unsafe class LowRankDelta
{
    private readonly float[] _a;
    private readonly float[] _b;
    private float[] _intermediate = [];

    public int Rank { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public float Scaling { get; }

    public LowRankDelta(LoraPair pair, float scaling)
    {
        _a = pair.A;
        _b = pair.B;
        Rank = pair.Rank;
        InFeatures = pair.InFeatures;
        OutFeatures = pair.OutFeatures;
        Scaling = scaling;
    }

    /// <summary>y[rows × out] += scaling · (x[rows × in] · Aᵀ) · Bᵀ.</summary>
    public void AddTo(IGemmKernel gemm, Tensor x, int rows, Tensor y)
    {
        if (x.RowWidth != InFeatures) throw new ArgumentException($"lora: input width {x.RowWidth} but lora_A has {InFeatures} columns");
        if (y.RowWidth != OutFeatures) throw new ArgumentException($"lora: output width {y.RowWidth} but lora_B has {OutFeatures} rows");
        if (_intermediate.Length < rows * Rank) _intermediate = new float[rows * Rank];
        fixed (float* px = x.Data, py = y.Data, pa = _a, pb = _b, pt = _intermediate)
        {
            gemm.Sgemm(false, true, rows, Rank, InFeatures, 1f, px, x.RowWidth, pa, InFeatures, 0f, pt, Rank);
            gemm.Sgemm(false, true, rows, OutFeatures, Rank, Scaling, pt, Rank, pb, Rank, 1f, py, y.RowWidth);
        }
    }
}
