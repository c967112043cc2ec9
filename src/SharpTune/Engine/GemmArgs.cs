namespace SharpTune.Engine;

/// <summary>Argument validation and helpers shared by every <see cref="IGemmKernel"/> implementation.</summary>
internal static unsafe class GemmArgs
{
    public static void Check(bool transA, bool transB, int m, int n, int k, int lda, int ldb, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, Math.Max(1, transA ? m : k));
        ArgumentOutOfRangeException.ThrowIfLessThan(ldb, Math.Max(1, transB ? k : n));
        ArgumentOutOfRangeException.ThrowIfLessThan(ldc, Math.Max(1, n));
    }

    public static void CheckWeight(int m, int ldx, WeightMatrix w, int ldy)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldx, Math.Max(1, w.Cols));
        ArgumentOutOfRangeException.ThrowIfLessThan(ldy, Math.Max(1, w.Rows));
    }

    /// <summary>The arguments of GemmWeightInput: dy holds m rows of w.Rows values, dx m rows of w.Cols.</summary>
    public static void CheckWeightInput(int m, int lddy, WeightMatrix w, int lddx)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfLessThan(lddy, Math.Max(1, w.Rows));
        ArgumentOutOfRangeException.ThrowIfLessThan(lddx, Math.Max(1, w.Cols));
    }

    /// <summary>
    /// Finishes the shapes that need no multiply: an empty C, or k = 0, where C = beta·C. True when it did, so the
    /// caller returns without handing a zero dimension to a library.
    /// </summary>
    public static bool FinishedWithoutMultiply(int m, int n, int k, float beta, float* c, int ldc)
    {
        if (m == 0 || n == 0) return true;
        if (k != 0) return false;
        ScaleC(m, n, beta, c, ldc);
        return true;
    }

    /// <summary>C = beta·C, where beta == 0 clears C without reading it (BLAS semantics: NaN in C is ignored).</summary>
    public static void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        if (beta == 1f) return;
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (long)i * ldc, n);
            if (beta == 0f)
                row.Clear();
            else
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }
}
