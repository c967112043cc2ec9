using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Quantization;

/// <summary>
/// bitsandbytes' blockwise 8-bit quantisation with a 256-entry code map (<c>functional.quantize_blockwise</c> /
/// <c>dequantize_blockwise</c>, kernels <c>kQuantizeBlockwise</c> / <c>kDequantizeBlockwise</c> with the General8bit
/// data type): every block of <c>blockSize</c> consecutive values keeps its absmax in fp32, each value is scaled
/// by the reciprocal of that absmax and replaced by the index of the nearest code; dequantisation is
/// <c>map[code] · absmax</c>.
/// </summary>
public static unsafe class BlockwiseQuantizer
{
    /// <summary>Number of absmax blocks for <paramref name="count"/> values (the last block may be partial).</summary>
    public static int BlockCount(long count, int blockSize) => checked((int)((count + blockSize - 1) / blockSize));

    /// <summary>
    /// Quantises values block by block: absmax[b] = max |value| over block b, codes[i] = nearest code of
    /// value · (1 / absmax), found as <see cref="NearestCode"/> does.
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> values, int blockSize, ReadOnlySpan<float> map, Span<byte> codes, Span<float> absmax)
    {
        ValidateMap(map);
        if (blockSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), $"block size must be positive, not {blockSize}");
        if (codes.Length < values.Length)
            throw new ArgumentException($"codes hold {codes.Length} bytes, need {values.Length}", nameof(codes));
        int blocks = BlockCount(values.Length, blockSize);
        if (absmax.Length < blocks)
            throw new ArgumentException($"absmax holds {absmax.Length} values, need {blocks} blocks of {blockSize}", nameof(absmax));

        fixed (float* pmap = map)
        fixed (float* pvalues = values)
        fixed (byte* pcodes = codes)
            for (int block = 0; block < blocks; block++)
            {
                int first = block * blockSize;
                int length = Math.Min(blockSize, values.Length - first);
                float max = AbsMax(new ReadOnlySpan<float>(pvalues + first, length));
                absmax[block] = max;
                // The kernel multiplies by the reciprocal rather than dividing; an all-zero block gives 0·∞ = NaN,
                // which the search sends to the same code the kernel picks, and dequantises to ±0 either way.
                NearestCodes(pmap, pvalues + first, length, 1f / max, pcodes + first);
            }
    }

    /// <summary>codes[i] = <see cref="NearestCode"/>(map, values[i] · scale) for every i, eight at a time where AVX2 allows.</summary>
    internal static void NearestCodes(ReadOnlySpan<float> map, ReadOnlySpan<float> values, float scale, Span<byte> codes)
    {
        ValidateMap(map);
        if (codes.Length < values.Length)
            throw new ArgumentException($"codes hold {codes.Length} bytes, need {values.Length}", nameof(codes));
        fixed (float* pmap = map)
        fixed (float* pvalues = values)
        fixed (byte* pcodes = codes)
            NearestCodes(pmap, pvalues, values.Length, scale, pcodes);
    }

    private static void NearestCodes(float* map, float* values, int count, float scale, byte* codes)
    {
        int i = 0;
        if (Avx2.IsSupported)
            for (; i + Vector256<float>.Count <= count; i += Vector256<float>.Count)
                NearestCodes8(map, Vector256.Load(values + i) * Vector256.Create(scale), codes + i);
        var table = new ReadOnlySpan<float>(map, DynamicMap.Size);
        for (; i < count; i++)
            codes[i] = NearestCode(table, values[i] * scale);
    }

    /// <summary>values[i] = map[codes[i]] · absmax[i / blockSize].</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<float> absmax, int blockSize, ReadOnlySpan<float> map, Span<float> values)
    {
        ValidateMap(map);
        if (blockSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), $"block size must be positive, not {blockSize}");
        if (codes.Length < values.Length)
            throw new ArgumentException($"codes hold {codes.Length} bytes, need {values.Length}", nameof(codes));
        int blocks = BlockCount(values.Length, blockSize);
        if (absmax.Length < blocks)
            throw new ArgumentException($"absmax holds {absmax.Length} values, need {blocks} blocks of {blockSize}", nameof(absmax));

        fixed (float* pmap = map)
        fixed (byte* pcodes = codes)
        fixed (float* pvalues = values)
            for (int block = 0; block < blocks; block++)
            {
                int first = block * blockSize;
                int end = first + Math.Min(blockSize, values.Length - first);
                float scale = absmax[block];
                int i = first;
                if (Avx2.IsSupported)
                    for (; i + Vector256<float>.Count <= end; i += Vector256<float>.Count)
                    {
                        Vector256<int> index = Avx2.ConvertToVector256Int32(pcodes + i);
                        (Avx2.GatherVector256(pmap, index, sizeof(float)) * Vector256.Create(scale)).Store(pvalues + i);
                    }
                for (; i < end; i++)
                    pvalues[i] = pmap[pcodes[i]] * scale;
            }
    }

    /// <summary>Largest |value|, starting from −FLT_MAX as the kernel's reduction does.</summary>
    internal static float AbsMax(ReadOnlySpan<float> values)
    {
        int i = 0;
        float max = -float.MaxValue;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            var lanes = Vector256.Create(-float.MaxValue);
            var nan = Vector256<float>.Zero;
            for (; i + Vector256<float>.Count <= values.Length; i += Vector256<float>.Count)
            {
                var magnitude = Vector256.Abs(Vector256.Create(values.Slice(i, Vector256<float>.Count)));
                nan |= ~Vector256.Equals(magnitude, magnitude);
                lanes = Vector256.Max(lanes, magnitude);
            }
            // The maximum of magnitudes is the same in any order except for which NaN comes out; a block holding
            // a NaN takes the scalar reduction, so that even the NaN's payload matches.
            if (nan != Vector256<float>.Zero)
                return ScalarAbsMax(values);
            for (int lane = 0; lane < Vector256<float>.Count; lane++)
                max = MathF.Max(max, lanes[lane]);
        }
        return MathF.Max(max, ScalarAbsMax(values[i..]));
    }

    private static float ScalarAbsMax(ReadOnlySpan<float> values)
    {
        float max = -float.MaxValue;
        foreach (float value in values)
            max = MathF.Max(max, MathF.Abs(value));
        return max;
    }

    /// <summary>
    /// The nearest code as bitsandbytes' <c>dQuantize&lt;0&gt;</c> finds it in a sorted 256-entry map: a 7-step
    /// binary search from pivot 127 (steps 64, 32, …, 1) that tracks the codes bracketing x, then a midpoint
    /// rule between the final pivot and the bracketing code on x's side (ties stay on the pivot). The bracket
    /// starts at ±1, replaced by map[0] / map[255] when the search ran to an end.
    /// </summary>
    public static byte NearestCode(ReadOnlySpan<float> map, float x)
    {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float value = map[pivot];
        for (int step = 64; step > 0; step >>= 1)
        {
            if (x > value)
            {
                lowerPivot = pivot;
                lower = value;
                pivot += step;
            }
            else
            {
                upperPivot = pivot;
                upper = value;
                pivot -= step;
            }
            value = map[pivot];
        }
        if (upperPivot == 255)
            upper = map[upperPivot];
        if (lowerPivot == 0)
            lower = map[lowerPivot];

        if (x > value)
            return (byte)(x > (upper + value) * 0.5f ? upperPivot : pivot);
        return (byte)(x < (lower + value) * 0.5f ? lowerPivot : pivot);
    }

    /// <summary>
    /// <see cref="NearestCode"/> for 8 values at once, branch-free. The search makes the same 8 comparisons
    /// x &gt; map[i]: written as pos += step when x &gt; map[pos + step − 1] for step = 128, 64, …, 1 (the pivot is
    /// pos + step − 1), it visits 127, then 127 ± 64, … and ends with the final pivot p = pos rounded down to even
    /// and pos odd exactly when x &gt; map[p]. The bracketing codes of a complete search tree's leaf are its
    /// in-order neighbours p ± 1 (map[0] at p = 0, map[255] at p = 254, as the scalar ends), so the midpoint is
    /// (map[pos − 1] + map[pos]) · 0.5, the same float as the scalar's since addition commutes. Exact for any map.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NearestCodes8(float* map, Vector256<float> x, byte* codes)
    {
        var pos = Vector256.GreaterThan(x, Vector256.Create(map[127])).AsInt32() & Vector256.Create(128);
        Vector256<float> value = default;
        for (int step = 64; step > 0; step >>= 1)
        {
            value = Avx2.GatherVector256(map, pos + Vector256.Create(step - 1), sizeof(float));
            pos += Vector256.GreaterThan(x, value).AsInt32() & Vector256.Create(step);
        }
        // value = map[p] with p = pos & ~1. The bracketing code on x's side is p + 1 = pos when x > map[p] (pos
        // odd), else p − 1 (lowerPivot 0 when p = 0); the midpoint adds it to value in the scalar's operand order.
        var one = Vector256.Create(1);
        var above = Vector256.Equals(pos & one, one);
        var neighbour = Vector256.ConditionalSelect(above, pos, Vector256.Max(pos - one, Vector256<int>.Zero));
        var midpoint = (Avx2.GatherVector256(map, neighbour, sizeof(float)) + value) * Vector256.Create(0.5f);
        // Above: pos when x > midpoint, else p = pos − 1 (the mask is −1 where true). Below: the neighbour when
        // x < midpoint, else p = pos.
        var fromAbove = pos - one - Vector256.GreaterThan(x, midpoint).AsInt32();
        var fromBelow = Vector256.ConditionalSelect(Vector256.LessThan(x, midpoint).AsInt32(), neighbour, pos);
        var code = Vector256.ConditionalSelect(above, fromAbove, fromBelow);
        var halves = Vector128.Narrow(code.GetLower(), code.GetUpper());
        Unsafe.WriteUnaligned(codes, Vector128.Narrow(halves, halves).AsUInt64().ToScalar());
    }

    private static void ValidateMap(ReadOnlySpan<float> map)
    {
        if (map.Length != DynamicMap.Size)
            throw new ArgumentException($"a code map has {DynamicMap.Size} values, not {map.Length}", nameof(map));
    }
}
