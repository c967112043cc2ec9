namespace SharpTune.Engine;

/// <summary>
/// The part every kernel over a native BLAS-style library shares. Shapes with nothing to multiply are finished
/// here, so a library never sees a zero dimension; batches are a plain loop because the library already spreads
/// one call over its own threads. BF16/F16 weights go to the managed kernel, whose packing widens them tile by tile
/// on every core at once: the libraries multiply fp32 only, and widening blocks for them on the calling thread
/// left the other core idle (a LoRA step of Qwen2.5-0.5B spent ~20% longer in its frozen products that way).
/// </summary>
public abstract unsafe class NativeGemmKernel : IGemmKernel
{
    private protected NativeGemmKernel(string libraryName) => LibraryName = libraryName;

    public abstract string Name { get; }

    /// <summary>The shared object that was loaded, e.g. "libdnnl.so.2".</summary>
    public string LibraryName { get; }

    public void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        GemmArgs.Check(transA, transB, m, n, k, lda, ldb, ldc);
        if (GemmArgs.FinishedWithoutMultiply(m, n, k, beta, c, ldc)) return;
        LibrarySgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    public void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        for (int i = 0; i < batch; i++)
            Sgemm(transA, transB, m, n, k, alpha, a + i * strideA, lda, b + i * strideB, ldb, beta, c + i * strideC, ldc);
    }

    public void GemmWeight(int m, float* x, int ldx, WeightMatrix w, float beta, float* y, int ldy)
    {
        GemmArgs.CheckWeight(m, ldx, w, ldy);
        if (w.DType == DType.F32)
            Sgemm(false, true, m, w.Rows, w.Cols, 1f, x, ldx, (float*)w.Data, Math.Max(1, w.Cols), beta, y, ldy);
        else
            GemmKernels.Managed.GemmWeight(m, x, ldx, w, beta, y, ldy);
    }

    public void GemmWeightInput(int m, float* dy, int lddy, WeightMatrix w, float beta, float* dx, int lddx)
    {
        GemmArgs.CheckWeightInput(m, lddy, w, lddx);
        if (w.DType == DType.F32)
            Sgemm(false, false, m, w.Cols, w.Rows, 1f, dy, lddy, (float*)w.Data, Math.Max(1, w.Cols), beta, dx, lddx);
        else
            GemmKernels.Managed.GemmWeightInput(m, dy, lddy, w, beta, dx, lddx);
    }

    /// <summary>The library's row-major sgemm, called with checked arguments and m, n, k ≥ 1.</summary>
    private protected abstract void LibrarySgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);
}
