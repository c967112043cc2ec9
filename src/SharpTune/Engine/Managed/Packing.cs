using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Engine;

/// <summary>
/// A GEMM operand as stored: row-major with row stride <see cref="Ld"/> elements, optionally transposed,
/// in F32, BF16 or F16. Element (r, c) of op(X) is Data[r·Ld + c], or Data[c·Ld + r] when transposed.
/// </summary>
internal readonly unsafe struct Operand(void* data, DType dtype, long ld, bool trans)
{
    public readonly byte* Data = (byte*)data;
    public readonly DType DType = dtype;
    public readonly long Ld = ld;
    public readonly bool Trans = trans;
    public readonly int ElementSize = dtype == DType.F32 ? 4 : 2;

    /// <summary>Address of stored element (row, col) — stored coordinates, not op() coordinates.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* At(long row, long col) => Data + (row * Ld + col) * ElementSize;
}

/// <summary>
/// Packing of op(A) into MR-row micro-panels laid out [k][MR] and of op(B) into NR-column micro-panels laid out
/// [k][NR], so the micro-kernel streams both with unit stride. Padding rows/columns are zero, which lets edge
/// tiles run the full micro-kernel. Whichever operand is stored "across" the panel (A not transposed, B
/// transposed — the GemmWeight case) is transposed 8×8 in registers; low-precision weights are widened on load.
/// </summary>
internal static unsafe class Packing
{
    /// <summary>dst[p·mr + i] = op(A)[i0 + i, k0 + p] for i &lt; rows, zero for rows ≤ i &lt; mr.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackA(in Operand a, int i0, int rows, int k0, int kc, int mr, float* dst)
    {
        if (a.Trans)
            PackContiguous(a, k0, kc, i0, rows, mr, dst);
        else
            PackAcross(a, i0, rows, k0, kc, mr, dst);
    }

    /// <summary>dst[p·nr + j] = op(B)[k0 + p, j0 + j] for j &lt; cols, zero for cols ≤ j &lt; nr.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackB(in Operand b, int j0, int cols, int k0, int kc, int nr, float* dst)
    {
        if (b.Trans)
            PackAcross(b, j0, cols, k0, kc, nr, dst);
        else
            PackContiguous(b, k0, kc, j0, cols, nr, dst);
    }

    /// <summary>The panel's width runs along stored rows: each k step copies (widens) one contiguous run.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackContiguous(in Operand x, int k0, int kc, int w0, int width, int panel, float* dst)
    {
        if (x.DType == DType.F32 && Vector256.IsHardwareAccelerated)
        {
            // Panels are only 8–32 wide: an inline vector copy beats a call into a general copy routine per k step.
            int wVec = width & ~7;
            for (int p = 0; p < kc; p++)
            {
                float* s = (float*)x.At(k0 + p, w0);
                float* d = dst + (long)p * panel;
                int w = 0;
                for (; w < wVec; w += 8) Vector256.Store(Vector256.Load(s + w), d + w);
                for (; w < width; w++) d[w] = s[w];
                for (; w < panel; w++) d[w] = 0f;
            }
            return;
        }
        for (int p = 0; p < kc; p++)
        {
            float* d = dst + (long)p * panel;
            Widen.Run(x.At(k0 + p, w0), x.DType, d, width);
            for (int w = width; w < panel; w++) d[w] = 0f;
        }
    }

    /// <summary>The panel's width runs across stored rows (one stored row per panel lane): transpose while packing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackAcross(in Operand x, int w0, int width, int k0, int kc, int panel, float* dst)
    {
        int w = 0;
        if (Avx2.IsSupported)
        {
            int kVec = kc & ~7;
            for (; w + 8 <= width; w += 8)
            {
                for (int p = 0; p < kVec; p += 8)
                    Transpose8x8(x.At(w0 + w, k0 + p), x.Ld * x.ElementSize, x.DType, dst + (long)p * panel + w, panel);
                for (int i = 0; i < 8; i++)
                {
                    byte* src = x.At(w0 + w + i, k0);
                    for (int p = kVec; p < kc; p++) dst[(long)p * panel + w + i] = Widen.One(src, x.DType, p);
                }
            }
        }
        for (; w < width; w++)
        {
            byte* src = x.At(w0 + w, k0);
            for (int p = 0; p < kc; p++) dst[(long)p * panel + w] = Widen.One(src, x.DType, p);
        }
        for (; w < panel; w++)
            for (int p = 0; p < kc; p++) dst[(long)p * panel + w] = 0f;
    }

    /// <summary>Loads 8 stored rows × 8 elements (widened to fp32) and stores them transposed: dst row q = column q.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(byte* src, long rowBytes, DType dtype, float* dst, int ldd)
    {
        var r0 = Widen.Load8(src, dtype);
        var r1 = Widen.Load8(src + rowBytes, dtype);
        var r2 = Widen.Load8(src + 2 * rowBytes, dtype);
        var r3 = Widen.Load8(src + 3 * rowBytes, dtype);
        var r4 = Widen.Load8(src + 4 * rowBytes, dtype);
        var r5 = Widen.Load8(src + 5 * rowBytes, dtype);
        var r6 = Widen.Load8(src + 6 * rowBytes, dtype);
        var r7 = Widen.Load8(src + 7 * rowBytes, dtype);

        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);

        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);

        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }
}
