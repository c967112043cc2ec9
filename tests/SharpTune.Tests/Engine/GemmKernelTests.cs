using SharpTune.Engine;
using static SharpTune.Tests.Engine.GemmTestSupport;

namespace SharpTune.Tests.Engine;

public unsafe class GemmKernelTests
{
    // Odd sizes exercise edge tiles in every dimension; k > 256 crosses K blocks; n > 512 and the 2·10⁶-flop
    // threshold engage several column tasks and the thread pool.
    private static readonly (int M, int N, int K)[] s_sizes =
    [
        (1, 1, 1), (1, 7, 33), (7, 1, 97), (7, 33, 97), (33, 7, 1), (97, 97, 33), (9, 200, 300), (64, 130, 257), (130, 600, 40),
    ];

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void Sgemm_AllTransposes_OddSizes_PaddedStrides(string name)
    {
        var kernel = Get(name);
        foreach (var (m, n, k) in s_sizes)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    Check(kernel, ta, tb, m, n, k, alpha: 1.5f, beta: 0.5f, pad: 3, seed: m * 31 + n * 7 + k);
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void Sgemm_AlphaBetaVariants(string name)
    {
        var kernel = Get(name);
        foreach (var (alpha, beta) in new[] { (1f, 0f), (1f, 1f), (-0.75f, 2f), (0f, 0.5f), (0f, 0f), (2f, -1f) })
        {
            Check(kernel, false, true, 20, 45, 70, alpha, beta, pad: 0, seed: 5);
            Check(kernel, true, false, 70, 300, 260, alpha, beta, pad: 5, seed: 6);
        }
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void Sgemm_BetaZero_IgnoresNaNInC(string name)
    {
        var kernel = Get(name);
        foreach (var (m, n, k) in new[] { (5, 9, 13), (70, 150, 300) })
        {
            using var a = new NativeFloats((long)m * k, 1);
            using var b = new NativeFloats((long)k * n, 2);
            using var c = new NativeFloats((long)m * n, 0, float.NaN, random: false);
            kernel.Sgemm(false, false, m, n, k, 1f, a.Ptr, k, b.Ptr, n, 0f, c.Ptr, n);
            using var zeros = new NativeFloats((long)m * n, 0, 0f, random: false);
            AssertGemm(false, false, m, n, k, 1f, a.Ptr, k, b.Ptr, n, 0f, zeros.Ptr, c.Ptr, n);
        }
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void Sgemm_EmptyK_ScalesC(string name)
    {
        var kernel = Get(name);
        using var a = new NativeFloats(4, 1);
        using var b = new NativeFloats(12, 2);
        using var c = new NativeFloats(12, 3);
        float before = c.Ptr[5];
        kernel.Sgemm(false, false, 3, 4, 0, 1f, a.Ptr, 1, b.Ptr, 4, 0.5f, c.Ptr, 4);
        Assert.Equal(before * 0.5f, c.Ptr[5]);
        using var nan = new NativeFloats(12, 0, float.NaN, random: false);
        kernel.Sgemm(false, false, 3, 4, 0, 1f, a.Ptr, 1, b.Ptr, 4, 0f, nan.Ptr, 4);
        Assert.All(nan.Span.ToArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void SgemmBatched_MatchesPerItemReference(string name)
    {
        var kernel = Get(name);
        foreach (var (batch, m, n, k, ta, tb) in new[] { (3, 17, 33, 9, false, true), (5, 64, 64, 64, true, false), (2, 130, 200, 90, false, false) })
        {
            int lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 4;
            long strideA = (long)(ta ? k : m) * lda + 7, strideB = (long)(tb ? n : k) * ldb + 3, strideC = (long)m * ldc + 5;
            using var a = new NativeFloats(batch * strideA, 11);
            using var b = new NativeFloats(batch * strideB, 12);
            using var c = new NativeFloats(batch * strideC, 13);
            using var c0 = new NativeFloats(batch * strideC, 13);
            kernel.SgemmBatched(batch, ta, tb, m, n, k, 0.5f, a.Ptr, lda, strideA, b.Ptr, ldb, strideB, 0.25f, c.Ptr, ldc, strideC);
            for (int i = 0; i < batch; i++)
                AssertGemm(ta, tb, m, n, k, 0.5f, a.Ptr + i * strideA, lda, b.Ptr + i * strideB, ldb, 0.25f,
                    c0.Ptr + i * strideC, c.Ptr + i * strideC, ldc);
        }
    }

    [Theory]
    [GemmKernelData("managed-avx512"), GemmKernelData("managed-avx2"), GemmKernelData("managed-scalar"), GemmKernelData("onednn"), GemmKernelData("openblas")]
    public void Sgemm_ConcurrentCallers_AreCorrect(string name)
    {
        var kernel = Get(name);
        const int m = 96, n = 160, k = 200;
        Parallel.For(0, 4, t =>
        {
            using var a = new NativeFloats((long)m * k, 20 + t);
            using var b = new NativeFloats((long)n * k, 30 + t);
            using var c = new NativeFloats((long)m * n, 40 + t);
            using var c0 = new NativeFloats((long)m * n, 40 + t);
            kernel.Sgemm(false, true, m, n, k, 1f, a.Ptr, k, b.Ptr, k, 1f, c.Ptr, n);
            AssertGemm(false, true, m, n, k, 1f, a.Ptr, k, b.Ptr, k, 1f, c0.Ptr, c.Ptr, n);
        });
    }

    [OneDnnBf16GemmFact]
    public void OneDnn_Bf16Gemm_MatchesReference()
    {
        var dnnl = OneDnnGemmKernel.Instance!;
        const int m = 19, n = 37, k = 70;
        using var af = new NativeFloats((long)m * k, 1);
        using var bf = new NativeFloats((long)n * k, 2);
        var a16 = new ushort[m * k];
        var b16 = new ushort[n * k];
        BFloat16.FromSingle(af.Span, a16);
        BFloat16.FromSingle(bf.Span, b16);
        BFloat16.ToSingle(a16, af.Span);
        BFloat16.ToSingle(b16, bf.Span);
        using var c = new NativeFloats((long)m * n, 3);
        using var c0 = new NativeFloats((long)m * n, 3);
        fixed (ushort* pa = a16, pb = b16)
            dnnl.GemmBf16(false, true, m, n, k, 1f, pa, k, pb, k, 0.5f, c.Ptr, n);
        AssertGemm(false, true, m, n, k, 1f, af.Ptr, k, bf.Ptr, k, 0.5f, c0.Ptr, c.Ptr, n);
    }

    private static void Check(IGemmKernel kernel, bool ta, bool tb, int m, int n, int k, float alpha, float beta, int pad, int seed)
    {
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        using var a = new NativeFloats((long)(ta ? k : m) * lda, seed);
        using var b = new NativeFloats((long)(tb ? n : k) * ldb, seed + 1);
        using var c = new NativeFloats((long)m * ldc, seed + 2);
        using var c0 = new NativeFloats((long)m * ldc, seed + 2);
        kernel.Sgemm(ta, tb, m, n, k, alpha, a.Ptr, lda, b.Ptr, ldb, beta, c.Ptr, ldc);
        AssertGemm(ta, tb, m, n, k, alpha, a.Ptr, lda, b.Ptr, ldb, beta, c0.Ptr, c.Ptr, ldc);
    }
}
