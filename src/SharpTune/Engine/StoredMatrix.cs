namespace SharpTune.Engine;

/// <summary>
/// A frozen weight kept exactly as the checkpoint stores it (F32, BF16 or F16, usually a view into the memory-mapped
/// safetensors file): the forward widens inside <see cref="IGemmKernel.GemmWeight"/>'s packing, the backward widens
/// blocks of rows into a reusable per-thread buffer, so no fp32 copy of the whole matrix ever exists. Over F32 both
/// directions are one plain sgemm on the stored values, the same numbers an fp32 copy would give.
/// The memory behind <see cref="Matrix"/> belongs to the caller and must outlive this object.
/// </summary>
public sealed unsafe class StoredMatrix(WeightMatrix matrix) : IFrozenMatrix
{
    // 256 rows per block: each sgemm then reduces over 256 of the matrix's rows (the inner dimension of dy·W), large
    // enough for the kernels to run at full speed, and the block (≤ 256 × 18944 fp32 = 18.5 MiB) stays small.
    private const int RowsPerBlock = 256;

    [ThreadStatic] private static ScratchBuffer? t_block;

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
        var kernel = GemmKernels.Default;
        int ldw = Math.Max(1, Cols), ldy = Math.Max(1, Rows);
        fixed (float* pdy = dy, pdx = dx)
        {
            if (Matrix.DType == DType.F32 || Rows == 0)
            {
                kernel.Sgemm(false, false, m, Cols, Rows, 1f, pdy, ldy, (float*)Matrix.Data, ldw, accumulate ? 1f : 0f, pdx, ldw);
                return;
            }
            int rowsPerBlock = Math.Min(RowsPerBlock, Rows);
            float* block = (t_block ??= new ScratchBuffer()).Get((long)rowsPerBlock * Cols);
            int elementSize = DTypeInfo.SizeOf(Matrix.DType);
            for (int r0 = 0; r0 < Rows; r0 += rowsPerBlock)
            {
                int rows = Math.Min(rowsPerBlock, Rows - r0);
                Widen.Run((byte*)Matrix.Data + (long)r0 * Cols * elementSize, Matrix.DType, block, rows * Cols);
                float beta = r0 == 0 && !accumulate ? 0f : 1f;
                kernel.Sgemm(false, false, m, Cols, rows, 1f, pdy + r0, ldy, block, ldw, beta, pdx, ldw);
            }
        }
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

    private static void CheckLengths(float[] input, long inputNeeded, float[] output, long outputNeeded, int m)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if (input.Length < inputNeeded || output.Length < outputNeeded)
            throw new ArgumentException($"{m} rows need {inputNeeded} input and {outputNeeded} output values, got {input.Length} and {output.Length}");
    }
}
