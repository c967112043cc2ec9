using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SharpTune.Engine;

/// <summary>
/// The few fp32 vector operations the backend's hand-written loops need, over one vector width. Loops are written
/// once as generics over this interface; the JIT specialises them per struct, so the calls compile to single
/// instructions. <see cref="FloatSimd.Vector512Preferred"/>/<see cref="FloatSimd.Vector256Preferred"/> pick the width.
/// </summary>
internal unsafe interface IFloatSimd<TVector> where TVector : struct
{
    static abstract int Count { get; }
    static abstract TVector Zero { get; }
    static abstract TVector Broadcast(float value);
    static abstract TVector Load(float* source);
    static abstract void Store(TVector value, float* destination);
    static abstract TVector Add(TVector left, TVector right);

    /// <summary>left · right + addend with a single rounding.</summary>
    static abstract TVector MultiplyAdd(TVector left, TVector right, TVector addend);

    /// <summary>2·Count bf16 values widened to fp32 (exact: a bf16 is the upper half of a float32).</summary>
    static abstract void LoadBf16(ushort* source, out TVector lower, out TVector upper);

    static abstract float Sum(TVector value);
}

internal readonly unsafe struct Simd512 : IFloatSimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> left, Vector512<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> left, Vector512<float> right, Vector512<float> addend) => Vector512.FusedMultiplyAdd(left, right, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16(ushort* source, out Vector512<float> lower, out Vector512<float> upper)
    {
        var bits = Vector512.Load(source);
        lower = (Vector512.WidenLower(bits) << 16).AsSingle();
        upper = (Vector512.WidenUpper(bits) << 16).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> value) => Vector512.Sum(value);
}

internal readonly unsafe struct Simd256 : IFloatSimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> left, Vector256<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> left, Vector256<float> right, Vector256<float> addend) => Vector256.FusedMultiplyAdd(left, right, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16(ushort* source, out Vector256<float> lower, out Vector256<float> upper)
    {
        var bits = Vector256.Load(source);
        lower = (Vector256.WidenLower(bits) << 16).AsSingle();
        upper = (Vector256.WidenUpper(bits) << 16).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> value) => Vector256.Sum(value);
}

internal readonly unsafe struct Simd128 : IFloatSimd<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> value, float* destination) => value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> left, Vector128<float> right) => left + right;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MultiplyAdd(Vector128<float> left, Vector128<float> right, Vector128<float> addend) => Vector128.FusedMultiplyAdd(left, right, addend);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBf16(ushort* source, out Vector128<float> lower, out Vector128<float> upper)
    {
        var bits = Vector128.Load(source);
        lower = (Vector128.WidenLower(bits) << 16).AsSingle();
        upper = (Vector128.WidenUpper(bits) << 16).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> value) => Vector128.Sum(value);
}

internal static class FloatSimd
{
    /// <summary>The widest accelerated width; each loop dispatches on these (JIT-time constants) once per call.</summary>
    public static bool Vector512Preferred => Vector512.IsHardwareAccelerated;

    public static bool Vector256Preferred => !Vector512.IsHardwareAccelerated && Vector256.IsHardwareAccelerated;
}
