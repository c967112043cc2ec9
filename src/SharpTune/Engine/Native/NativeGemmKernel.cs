namespace SharpTune.Engine;

/// <summary>
/// The part every kernel over a native BLAS-style library shares. Shapes with nothing to multiply are finished
/// here, so a library never sees a zero dimension; batches are a plain loop because the library already spreads
/// one call over its own threads; BF16/F16 weights go through <see cref="WeightStaging"/> because the libraries
/// multiply fp32 only.
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

    public void GemmWeight(int m, float* x, int ldx, WeightMatrix w, float beta, float* y, int ldy) =>
        WeightStaging.GemmWeight(this, m, x, ldx, w, beta, y, ldy);

    /// <summary>The library's row-major sgemm, called with checked arguments and m, n, k ≥ 1.</summary>
    private protected abstract void LibrarySgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);
}
