using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Engine;

/// <summary>Instruction-set variants of the managed GEMM.</summary>
public enum ManagedGemmIsa
{
    /// <summary>Plain scalar code: correct everywhere, slow.</summary>
    Scalar,
    /// <summary>AVX2 + FMA, 6×16 register tile (12 ymm accumulators of 16 registers).</summary>
    Avx2,
    /// <summary>AVX-512F, 8×32 register tile (16 zmm accumulators of 32 registers).</summary>
    Avx512,
}

/// <summary>
/// Register-blocked micro-kernels: C[MR×NR] = alpha·(Ã·B̃) + beta·C over one packed A micro-panel
/// (kc steps of MR values) and one packed B micro-panel (kc steps of NR values).
/// beta == 0 writes without reading C, so NaN garbage there is ignored.
/// </summary>
internal static unsafe class MicroKernels
{
    public static (int Mr, int Nr) Shape(ManagedGemmIsa isa) => isa switch
    {
        ManagedGemmIsa.Avx512 => (8, 32),
        ManagedGemmIsa.Avx2 => (6, 16),
        _ => (4, 4),
    };

    public static bool IsSupported(ManagedGemmIsa isa) => isa switch
    {
        ManagedGemmIsa.Avx512 => Avx512F.IsSupported && Vector512.IsHardwareAccelerated,
        ManagedGemmIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    public static delegate*<int, float*, float*, float*, nint, float, float, void> For(ManagedGemmIsa isa) => isa switch
    {
        ManagedGemmIsa.Avx512 => &Avx512_8x32,
        ManagedGemmIsa.Avx2 => &Avx2_6x16,
        _ => &Scalar_4x4,
    };

    // 16 accumulators + 2 B vectors + the broadcast A value use 19 of the 32 zmm registers; two FMA ports with
    // 4-cycle latency need at least 8 independent accumulators, so 16 keeps both ports busy without spilling.
    [SkipLocalsInit, MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx512_8x32(int kc, float* pa, float* pb, float* c, nint ldc, float alpha, float beta)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Avx512F.LoadAlignedVector512(pb);
            var b1 = Avx512F.LoadAlignedVector512(pb + 16);
            var a = Vector512.Create(pa[0]);
            c00 = Avx512F.FusedMultiplyAdd(a, b0, c00); c01 = Avx512F.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(pa[1]);
            c10 = Avx512F.FusedMultiplyAdd(a, b0, c10); c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(pa[2]);
            c20 = Avx512F.FusedMultiplyAdd(a, b0, c20); c21 = Avx512F.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(pa[3]);
            c30 = Avx512F.FusedMultiplyAdd(a, b0, c30); c31 = Avx512F.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(pa[4]);
            c40 = Avx512F.FusedMultiplyAdd(a, b0, c40); c41 = Avx512F.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(pa[5]);
            c50 = Avx512F.FusedMultiplyAdd(a, b0, c50); c51 = Avx512F.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(pa[6]);
            c60 = Avx512F.FusedMultiplyAdd(a, b0, c60); c61 = Avx512F.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(pa[7]);
            c70 = Avx512F.FusedMultiplyAdd(a, b0, c70); c71 = Avx512F.FusedMultiplyAdd(a, b1, c71);
            pa += 8;
            pb += 32;
        }
        var va = Vector512.Create(alpha);
        if (beta == 0f)
        {
            Store512(c, c00 * va, c01 * va); c += ldc;
            Store512(c, c10 * va, c11 * va); c += ldc;
            Store512(c, c20 * va, c21 * va); c += ldc;
            Store512(c, c30 * va, c31 * va); c += ldc;
            Store512(c, c40 * va, c41 * va); c += ldc;
            Store512(c, c50 * va, c51 * va); c += ldc;
            Store512(c, c60 * va, c61 * va); c += ldc;
            Store512(c, c70 * va, c71 * va);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Update512(c, c00, c01, va, vb); c += ldc;
            Update512(c, c10, c11, va, vb); c += ldc;
            Update512(c, c20, c21, va, vb); c += ldc;
            Update512(c, c30, c31, va, vb); c += ldc;
            Update512(c, c40, c41, va, vb); c += ldc;
            Update512(c, c50, c51, va, vb); c += ldc;
            Update512(c, c60, c61, va, vb); c += ldc;
            Update512(c, c70, c71, va, vb);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> x0, Vector512<float> x1)
    {
        Avx512F.Store(c, x0);
        Avx512F.Store(c + 16, x1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Update512(float* c, Vector512<float> x0, Vector512<float> x1, Vector512<float> va, Vector512<float> vb)
    {
        Avx512F.Store(c, Avx512F.FusedMultiplyAdd(x0, va, Avx512F.LoadVector512(c) * vb));
        Avx512F.Store(c + 16, Avx512F.FusedMultiplyAdd(x1, va, Avx512F.LoadVector512(c + 16) * vb));
    }

    // The classic Haswell tile: 12 accumulators + 2 B vectors + 1 broadcast = all 16 ymm registers.
    [SkipLocalsInit, MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Avx2_6x16(int kc, float* pa, float* pb, float* c, nint ldc, float alpha, float beta)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Avx.LoadAlignedVector256(pb);
            var b1 = Avx.LoadAlignedVector256(pb + 8);
            var a = Vector256.Create(pa[0]);
            c00 = Fma.MultiplyAdd(a, b0, c00); c01 = Fma.MultiplyAdd(a, b1, c01);
            a = Vector256.Create(pa[1]);
            c10 = Fma.MultiplyAdd(a, b0, c10); c11 = Fma.MultiplyAdd(a, b1, c11);
            a = Vector256.Create(pa[2]);
            c20 = Fma.MultiplyAdd(a, b0, c20); c21 = Fma.MultiplyAdd(a, b1, c21);
            a = Vector256.Create(pa[3]);
            c30 = Fma.MultiplyAdd(a, b0, c30); c31 = Fma.MultiplyAdd(a, b1, c31);
            a = Vector256.Create(pa[4]);
            c40 = Fma.MultiplyAdd(a, b0, c40); c41 = Fma.MultiplyAdd(a, b1, c41);
            a = Vector256.Create(pa[5]);
            c50 = Fma.MultiplyAdd(a, b0, c50); c51 = Fma.MultiplyAdd(a, b1, c51);
            pa += 6;
            pb += 16;
        }
        var va = Vector256.Create(alpha);
        if (beta == 0f)
        {
            Store256(c, c00 * va, c01 * va); c += ldc;
            Store256(c, c10 * va, c11 * va); c += ldc;
            Store256(c, c20 * va, c21 * va); c += ldc;
            Store256(c, c30 * va, c31 * va); c += ldc;
            Store256(c, c40 * va, c41 * va); c += ldc;
            Store256(c, c50 * va, c51 * va);
        }
        else
        {
            var vb = Vector256.Create(beta);
            Update256(c, c00, c01, va, vb); c += ldc;
            Update256(c, c10, c11, va, vb); c += ldc;
            Update256(c, c20, c21, va, vb); c += ldc;
            Update256(c, c30, c31, va, vb); c += ldc;
            Update256(c, c40, c41, va, vb); c += ldc;
            Update256(c, c50, c51, va, vb);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> x0, Vector256<float> x1)
    {
        Avx.Store(c, x0);
        Avx.Store(c + 8, x1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Update256(float* c, Vector256<float> x0, Vector256<float> x1, Vector256<float> va, Vector256<float> vb)
    {
        Avx.Store(c, Fma.MultiplyAdd(x0, va, Avx.LoadVector256(c) * vb));
        Avx.Store(c + 8, Fma.MultiplyAdd(x1, va, Avx.LoadVector256(c + 8) * vb));
    }

    [SkipLocalsInit, MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scalar_4x4(int kc, float* pa, float* pb, float* c, nint ldc, float alpha, float beta)
    {
        float* acc = stackalloc float[16];
        new Span<float>(acc, 16).Clear();
        for (int p = 0; p < kc; p++)
        {
            for (int i = 0; i < 4; i++)
            {
                float a = pa[i];
                for (int j = 0; j < 4; j++) acc[i * 4 + j] = MathF.FusedMultiplyAdd(a, pb[j], acc[i * 4 + j]);
            }
            pa += 4;
            pb += 4;
        }
        for (int i = 0; i < 4; i++)
        {
            float* row = c + i * ldc;
            for (int j = 0; j < 4; j++)
                row[j] = beta == 0f ? alpha * acc[i * 4 + j] : MathF.FusedMultiplyAdd(alpha, acc[i * 4 + j], beta * row[j]);
        }
    }
}
