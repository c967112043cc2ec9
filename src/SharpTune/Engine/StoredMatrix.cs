namespace SharpTune.Engine;

/// <summary>
/// A frozen weight kept exactly as the checkpoint stores it (F32, BF16 or F16, usually a view into the memory-mapped
/// safetensors file): both directions go through the kernel's <see cref="IGemmKernel.GemmWeight"/> and
/// <see cref="IGemmKernel.GemmWeightInput"/>, which widen it tile by tile, so no fp32 copy of the whole matrix ever exists. Over F32 both
/// directions are one plain sgemm on the stored values, the same numbers an fp32 copy would give.
/// The memory behind <see cref="Matrix"/> belongs to the caller and must outlive this object.
/// </summary>
public sealed unsafe class StoredMatrix(WeightMatrix matrix) : IFrozenMatrix
{
    /// <summary>The stored view (pointer, dtype, shape).</summary>
    public WeightMatrix Matrix { get; } = matrix;

    public int Rows => Matrix.Rows;
    public int Cols => Matrix.Cols;
    public long StorageBytes => (long)Rows * Cols * DTypeInfo.SizeOf(Matrix.DType);

    public void MultiplyTransposed(float[] x, int m, float[] y)
    {
        CheckLengths(x, (long)m * Cols, y, (long)m * Rows, m);
        fixed (float* px = x, py = y)
            GemmKernels.Default.GemmWeight(m, px, Math.Max(1, Cols), Matrix, 0f, py, Math.Max(1, Rows));
    }

    public void Multiply(float[] dy, int m, float[] dx, bool accumulate)
    {
        CheckLengths(dy, (long)m * Rows, dx, (long)m * Cols, m);
        fixed (float* pdy = dy, pdx = dx)
            GemmKernels.Default.GemmWeightInput(m, pdy, Math.Max(1, Rows), Matrix, accumulate ? 1f : 0f, pdx, Math.Max(1, Cols));
    }

    public void ReadRows(int firstRow, int count, Span<float> destination)
    {
        if (firstRow < 0 || count < 0 || firstRow > Rows - count)
            throw new ArgumentOutOfRangeException(nameof(firstRow), $"rows [{firstRow}, {firstRow + count}) are outside the matrix's {Rows} rows");
        if (destination.Length < (long)count * Cols)
            throw new ArgumentException($"destination holds {destination.Length} values; {count} rows need {(long)count * Cols}", nameof(destination));
        for (int r = 0; r < count; r++)
            Matrix.ReadRow(firstRow + r, destination.Slice(r * Cols, Cols));
    }

    /// <summary>Checks a product's input and output arrays hold the m rows it reads and writes.</summary>
    internal static void CheckLengths(float[] input, long inputNeeded, float[] output, long outputNeeded, int m)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if (input.Length < inputNeeded || output.Length < outputNeeded)
            throw new ArgumentException($"{m} rows need {inputNeeded} input and {outputNeeded} output values, got {input.Length} and {output.Length}");
    }
}
