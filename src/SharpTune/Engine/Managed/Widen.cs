using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Engine;

/// <summary>Vectorised widening of BF16/F16/F32 runs to fp32, used while packing and staging weights.</summary>
internal static unsafe class Widen
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float One(void* data, DType dtype, long index) => dtype switch
    {
        DType.F32 => ((float*)data)[index],
        DType.BF16 => BFloat16.ToSingle(((ushort*)data)[index]),
        _ => (float)((Half*)data)[index],
    };

    /// <summary>dst[0..count) = (float)src[0..count) for a contiguous run of <paramref name="dtype"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(void* src, DType dtype, float* dst, int count)
    {
        int i = 0;
        if (dtype == DType.F32)
        {
            Buffer.MemoryCopy(src, dst, (long)count * 4, (long)count * 4);
            return;
        }
        ushort* s = (ushort*)src;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 32 <= count; i += 32)
            {
                var h = Vector512.Load(s + i);
                Vector512.Store(ToSingle(Vector512.WidenLower(h), dtype), dst + i);
                Vector512.Store(ToSingle(Vector512.WidenUpper(h), dtype), dst + i + 16);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= count; i += 16)
            {
                var h = Vector256.Load(s + i);
                Vector256.Store(ToSingle(Vector256.WidenLower(h), dtype), dst + i);
                Vector256.Store(ToSingle(Vector256.WidenUpper(h), dtype), dst + i + 8);
            }
        }
        for (; i < count; i++) dst[i] = One(src, dtype, i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ToSingle(Vector512<uint> h, DType dtype) =>
        dtype == DType.BF16 ? (h << 16).AsSingle() : HalfToSingle(h);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ToSingle(Vector256<uint> h, DType dtype) =>
        dtype == DType.BF16 ? (h << 16).AsSingle() : HalfToSingle(h);

    /// <summary>
    /// IEEE binary16 bits (zero-extended) to float32, exactly. The exponent/mantissa field is moved into float
    /// position and rescaled by 2^112 (the bias difference), which also normalises half denormals; Inf/NaN
    /// (exponent 31) get the float all-ones exponent instead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        var magnitude = h & Vector512.Create(0x7FFFu);
        var shifted = magnitude << 13;
        var scaled = (shifted.AsSingle() * Vector512.Create(0x7780_0000u).AsSingle()).AsUInt32();
        var infNan = shifted | Vector512.Create(0x7F80_0000u);
        var isInfNan = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x7C00u));
        return (Vector512.ConditionalSelect(isInfNan, infNan, scaled) | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        var magnitude = h & Vector256.Create(0x7FFFu);
        var shifted = magnitude << 13;
        var scaled = (shifted.AsSingle() * Vector256.Create(0x7780_0000u).AsSingle()).AsUInt32();
        var infNan = shifted | Vector256.Create(0x7F80_0000u);
        var isInfNan = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(isInfNan, infNan, scaled) | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }

    /// <summary>Eight consecutive elements at <paramref name="p"/> widened to fp32 (requires AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(void* p, DType dtype)
    {
        if (dtype == DType.F32) return Avx.LoadVector256((float*)p);
        var h = Avx2.ConvertToVector256Int32((ushort*)p).AsUInt32();
        return dtype == DType.BF16 ? (h << 16).AsSingle() : HalfToSingle(h);
    }
}
