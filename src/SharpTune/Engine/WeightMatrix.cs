namespace SharpTune.Engine;

/// <summary>
/// A rows×cols row-major weight matrix that stays in its stored dtype (F32, BF16 or F16).
/// The memory belongs to the owner (a memory-mapped safetensors file or a pinned array) and must outlive this view.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    public readonly void* Data;
    public readonly DType DType;
    public readonly int Rows;
    public readonly int Cols;

    public WeightMatrix(void* data, DType dtype, int rows, int cols)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"weight matrices must be F32, BF16 or F16, not {dtype}");
        Data = data;
        DType = dtype;
        Rows = rows;
        Cols = cols;
    }

    /// <summary>Row r widened to fp32 into dst (length Cols).</summary>
    public void ReadRow(int r, Span<float> dst)
    {
        long offset = (long)r * Cols;
        switch (DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)Data + offset, Cols).CopyTo(dst);
                break;
            case DType.BF16:
                BFloat16.ToSingle(new ReadOnlySpan<ushort>((ushort*)Data + offset, Cols), dst);
                break;
            default:
                Float16.ToSingle(new ReadOnlySpan<Half>((Half*)Data + offset, Cols), dst);
                break;
        }
    }
}
