namespace SharpTune.Engine;

/// <summary>
/// GemmWeight for kernels that only multiply fp32 (the native libraries): BF16/F16 weight rows are widened a block
/// at a time into a reusable per-thread fp32 buffer and multiplied into the matching output columns.
/// </summary>
internal static unsafe class WeightStaging
{
    // 256 weight rows per block: 256 × K fp32 (≤ 5 MiB at K = 4864) is still cache-warm when the sgemm consumes
    // it, and each call (M × 256 × K) is large enough for the library to run at full speed.
    private const int RowsPerBlock = 256;

    [ThreadStatic] private static ScratchBuffer? t_staging;

    public static void GemmWeight(IGemmKernel kernel, int m, float* x, int ldx, WeightMatrix w, float beta, float* y, int ldy)
    {
        GemmArgs.CheckWeight(m, ldx, w, ldy);
        if (w.DType == DType.F32)
        {
            kernel.Sgemm(false, true, m, w.Rows, w.Cols, 1f, x, ldx, (float*)w.Data, Math.Max(1, w.Cols), beta, y, ldy);
            return;
        }
        int rowsPerBlock = Math.Min(RowsPerBlock, Math.Max(1, w.Rows));
        float* staging = (t_staging ??= new ScratchBuffer()).Get((long)rowsPerBlock * w.Cols);
        int elementSize = DTypeInfo.SizeOf(w.DType);
        for (int r0 = 0; r0 < w.Rows; r0 += rowsPerBlock)
        {
            int rows = Math.Min(rowsPerBlock, w.Rows - r0);
            Widen.Run((byte*)w.Data + (long)r0 * w.Cols * elementSize, w.DType, staging, rows * w.Cols);
            kernel.Sgemm(false, true, m, rows, w.Cols, 1f, x, ldx, staging, Math.Max(1, w.Cols), beta, y + r0, ldy);
        }
    }
}
