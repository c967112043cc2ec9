using SharpTune.Engine;
using static SharpTune.Tests.Engine.GemmTestSupport;

namespace SharpTune.Tests.Engine;

/// <summary>
/// The low-rank product against the double-precision reference GEMM, over ranks and widths that hit every tail
/// (partial blocks of eight rows, widths that are not a multiple of 16, reductions shorter than a vector) and
/// padded row strides whose padding must stay untouched.
/// </summary>
public unsafe class SkinnyGemmTests
{
    private static readonly int[] Ranks = [1, 3, 8, 16, 20];
    private static readonly int[] Widths = [5, 16, 37, 100];
    private static readonly int[] Rows = [1, 6, 33];

    [Fact]
    public void MultiplyTransposed_matches_reference()
    {
        foreach (int m in Rows)
            foreach (int n in Ranks)
                foreach (int k in Widths)
                    foreach (float beta in new[] { 0f, 1f })
                    {
                        int ldx = k + 1, ldy = k + 2, ldc = n + 3;
                        using var x = new NativeFloats((long)m * ldx, 1);
                        using var y = new NativeFloats((long)n * ldy, 2);
                        using var c = new NativeFloats((long)m * ldc, 3);
                        using var c0 = new NativeFloats((long)m * ldc, 3);
                        SkinnyGemm.MultiplyTransposed(m, n, k, 0.5f, x.Ptr, ldx, y.Ptr, ldy, beta, c.Ptr, ldc);
                        AssertGemm(false, true, m, n, k, 0.5f, x.Ptr, ldx, y.Ptr, ldy, beta, c0.Ptr, c.Ptr, ldc);
                    }
    }
}
