namespace SharpTune.Engine;

/// <summary>
/// A single-precision matrix-multiply kernel on host memory. All matrices are row-major.
/// C[m×n] = alpha · op(A) · op(B) + beta · C, where op(A) is m×k (A stored k×m when transA)
/// and op(B) is k×n (B stored n×k when transB). lda/ldb/ldc are row strides in elements.
/// </summary>
public unsafe interface IGemmKernel
{
    /// <summary>Short name reported at start-up ("managed-avx512", "onednn", "openblas").</summary>
    string Name { get; }

    void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    /// <summary>Independent GEMMs over <paramref name="batch"/> matrices laid out at fixed element strides.</summary>
    void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC);

    /// <summary>
    /// y[m×n] = x[m×k] · Wᵀ (+ beta·y), where W is an n×k weight matrix kept in its storage dtype
    /// (F32, BF16 or F16). Low-precision weights are widened to fp32 while packing, never as a whole copy.
    /// </summary>
    void GemmWeight(int m, float* x, int ldx, WeightMatrix w, float beta, float* y, int ldy);

    /// <summary>
    /// dx[m×k] = dy[m×n] · W (+ beta·dx) for the same n×k weight: the input gradient of <see cref="GemmWeight"/>,
    /// with W again read in its storage dtype and never widened as a whole.
    /// </summary>
    void GemmWeightInput(int m, float* dy, int lddy, WeightMatrix w, float beta, float* dx, int lddx);
}
