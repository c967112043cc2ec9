using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace SharpTune.Engine;

/// <summary>bfloat16 ↔ float32 conversion. Narrowing rounds to nearest, ties to even; NaN stays NaN (quiet).</summary>
public static class BFloat16
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
            return (ushort)((bits >> 16) | 0x0040);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    public static void ToSingle(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        int i = 0;
        // Widening is a 16-bit shift of each element, so it vectorises exactly: 16 values per step.
        if (Vector256.IsHardwareAccelerated)
        {
            ref ushort s = ref MemoryMarshal.GetReference(src);
            ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
            for (; i + 16 <= src.Length; i += 16)
            {
                var (lower, upper) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                Vector256.ShiftLeft(lower, 16).StoreUnsafe(ref d, (nuint)i);
                Vector256.ShiftLeft(upper, 16).StoreUnsafe(ref d, (nuint)(i + 8));
            }
        }
        for (; i < src.Length; i++) dst[i] = ToSingle(src[i]);
    }

    public static void FromSingle(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        int i = 0;
        // The scalar rounding above, 16 values per step: bf16 compute rounds every activation it multiplies.
        if (Vector256.IsHardwareAccelerated)
        {
            ref uint s = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(src));
            ref ushort d = ref MemoryMarshal.GetReference(dst);
            var one = Vector256.Create(1u);
            var bias = Vector256.Create(0x7FFFu);
            var absMask = Vector256.Create(0x7FFF_FFFFu);
            var infinity = Vector256.Create(0x7F80_0000u);
            var quiet = Vector256.Create(0x0040u);
            for (; i + 16 <= src.Length; i += 16)
            {
                var lower = Round(Vector256.LoadUnsafe(ref s, (nuint)i));
                var upper = Round(Vector256.LoadUnsafe(ref s, (nuint)(i + 8)));
                Vector256.Narrow(lower, upper).StoreUnsafe(ref d, (nuint)i);
            }

            Vector256<uint> Round(Vector256<uint> bits)
            {
                var rounded = Vector256.ShiftRightLogical(bits + bias + (Vector256.ShiftRightLogical(bits, 16) & one), 16);
                var nan = Vector256.ShiftRightLogical(bits, 16) | quiet;
                return Vector256.ConditionalSelect(Vector256.GreaterThan(bits & absMask, infinity), nan, rounded);
            }
        }
        for (; i < src.Length; i++) dst[i] = FromSingle(src[i]);
    }
}

/// <summary>IEEE binary16 ↔ float32 conversion through System.Half (round to nearest even).</summary>
public static class Float16
{
    public static void ToSingle(ReadOnlySpan<Half> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(src, dst);
    }

    public static void FromSingle(ReadOnlySpan<float> src, Span<Half> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short");
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, dst);
    }
}
