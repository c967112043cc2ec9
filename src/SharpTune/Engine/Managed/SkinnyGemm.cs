using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SharpTune.Engine;

/// <summary>
/// C = X·Yᵀ where Y has only a few rows (LoRA's x·Aᵀ and dy·B at rank r): the packed GEMM transposes all of the
/// large X into micro-panels for a product that then does only r multiply-adds per element of it, so packing cost
/// more than the arithmetic (a rank-16 x·Aᵀ at 896 features ran at ~16 GFLOP/s). Here every output is a dot
/// product of two stored rows: X is streamed once in its own layout with AVX-512, eight rows of Y at a time.
/// Without AVX-512 the product goes to <see cref="GemmKernels.Default"/>. The other LoRA products (rank-r updates
/// and sums of outer products) were tried the same way and ran slower than the packed GEMM, so they stay there.
/// </summary>
public static unsafe class SkinnyGemm
{
    private const int Lanes = 16;

    private static bool Vectorised => Vector512.IsHardwareAccelerated;

    /// <summary>C[m×n] = alpha·X[m×k]·Yᵀ + beta·C, with Y stored n×k (n small): dot products of rows.</summary>
    public static void MultiplyTransposed(int m, int n, int k, float alpha, float* x, int ldx, float* y, int ldy, float beta, float* c, int ldc)
    {
        if (!Vectorised || k < Lanes)
        {
            GemmKernels.Default.Sgemm(false, true, m, n, k, alpha, x, ldx, y, ldy, beta, c, ldc);
            return;
        }
        nint px = (nint)x, py = (nint)y, pc = (nint)c;
        GemmThreadPool.Shared.ForRanges(m, 8, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                float* xi = (float*)px + (long)i * ldx;
                float* ci = (float*)pc + (long)i * ldc;
                for (int j0 = 0; j0 < n; j0 += 8)
                {
                    int count = Math.Min(8, n - j0);
                    DotRow8(xi, (float*)py + (long)j0 * ldy, ldy, count, k, alpha, beta, ci + j0);
                }
            }
        });
    }

    /// <summary>c[j] = alpha·(x · y_j) + beta·c[j] for the count (≤ 8) rows y_j of y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotRow8(float* x, float* y, int ldy, int count, int k, float alpha, float beta, float* c)
    {
        var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
        // Missing rows (count < 8) read row 0 again; their sums are never stored.
        float* y0 = y, y1 = y + (count > 1 ? ldy : 0), y2 = y + (count > 2 ? 2L * ldy : 0), y3 = y + (count > 3 ? 3L * ldy : 0);
        float* y4 = y + (count > 4 ? 4L * ldy : 0), y5 = y + (count > 5 ? 5L * ldy : 0), y6 = y + (count > 6 ? 6L * ldy : 0), y7 = y + (count > 7 ? 7L * ldy : 0);
        int p = 0;
        for (; p + Lanes <= k; p += Lanes)
        {
            var v = Vector512.Load(x + p);
            a0 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y0 + p), a0);
            a1 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y1 + p), a1);
            a2 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y2 + p), a2);
            a3 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y3 + p), a3);
            a4 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y4 + p), a4);
            a5 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y5 + p), a5);
            a6 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y6 + p), a6);
            a7 = Vector512.FusedMultiplyAdd(v, Vector512.Load(y7 + p), a7);
        }
        Span<float> sums = stackalloc float[8];
        sums[0] = Vector512.Sum(a0); sums[1] = Vector512.Sum(a1); sums[2] = Vector512.Sum(a2); sums[3] = Vector512.Sum(a3);
        sums[4] = Vector512.Sum(a4); sums[5] = Vector512.Sum(a5); sums[6] = Vector512.Sum(a6); sums[7] = Vector512.Sum(a7);
        for (int j = 0; j < count; j++)
        {
            float* yj = y + (long)j * ldy;
            float s = sums[j];
            for (int q = p; q < k; q++) s += x[q] * yj[q];
            c[j] = beta == 0f ? alpha * s : alpha * s + beta * c[j];
        }
    }
}
