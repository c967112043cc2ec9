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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

        SearchKernel kernel = FastestKernel;
        SearchLevels levels = default;
        fixed (float* pmap = map)
        fixed (float* pvalues = values)
        fixed (byte* pcodes = codes)
        {
            if (kernel == SearchKernel.Avx512)
                levels.Fill(pmap);
            for (int block = 0; block < blocks; block++)
            {
                int first = block * blockSize;
                int length = Math.Min(blockSize, values.Length - first);
                float max = AbsMax(new ReadOnlySpan<float>(pvalues + first, length));
                absmax[block] = max;
                // The kernel multiplies by the reciprocal rather than dividing; an all-zero block gives 0·∞ = NaN,
                // which the search sends to the same code the kernel picks, and dequantises to ±0 either way.
                NearestCodes(kernel, pmap, levels.Values, pvalues + first, length, 1f / max, pcodes + first);
            }
        }
    }

    /// <summary>The ways <see cref="NearestCodes(SearchKernel, ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{byte})"/> can run; all give the same codes.</summary>
    internal enum SearchKernel { Scalar, Avx2, Avx512 }

    /// <summary>The fastest search this processor runs.</summary>
    internal static SearchKernel FastestKernel =>
        Avx512F.IsSupported ? SearchKernel.Avx512 : Avx2.IsSupported ? SearchKernel.Avx2 : SearchKernel.Scalar;

    /// <summary>codes[i] = <see cref="NearestCode"/>(map, values[i] · scale) for every i, with the given search.</summary>
    internal static void NearestCodes(SearchKernel kernel, ReadOnlySpan<float> map, ReadOnlySpan<float> values, float scale, Span<byte> codes)
    {
        ValidateMap(map);
        if (codes.Length < values.Length)
            throw new ArgumentException($"codes hold {codes.Length} bytes, need {values.Length}", nameof(codes));
        if (kernel > FastestKernel)
            throw new PlatformNotSupportedException($"this processor cannot run the {kernel} search");
        SearchLevels levels = default;
        fixed (float* pmap = map)
        fixed (float* pvalues = values)
        fixed (byte* pcodes = codes)
        {
            if (kernel == SearchKernel.Avx512)
                levels.Fill(pmap);
            NearestCodes(kernel, pmap, levels.Values, pvalues, values.Length, scale, pcodes);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NearestCodes(SearchKernel kernel, float* map, float* levels, float* values, int count, float scale, byte* codes)
    {
        int i = 0;
        if (kernel == SearchKernel.Avx512)
            for (; i + Vector512<float>.Count <= count; i += Vector512<float>.Count)
                NearestCodes16(map, levels, Vector512.Load(values + i) * Vector512.Create(scale), codes + i);
        else if (kernel == SearchKernel.Avx2)
            for (; i + Vector256<float>.Count <= count; i += Vector256<float>.Count)
                NearestCodes8(map, Vector256.Load(values + i) * Vector256.Create(scale), codes + i);
        var table = new ReadOnlySpan<float>(map, DynamicMap.Size);
        for (; i < count; i++)
            codes[i] = NearestCode(table, values[i] * scale);
    }

    /// <summary>
    /// The codes each step of the search can compare against, level by level, for register-permute lookups: step
    /// s (64, 32, …, 1) compares map[j·2s + s − 1] for j = pos / 2s (see <see cref="NearestCodes8"/>), 128 / s
    /// candidates, each level padded to at least one 16-float vector.
    /// </summary>
    private struct SearchLevels
    {
        public const int Length = 16 + 16 + 16 + 16 + 32 + 64 + 128;

        private fixed float _values[Length];

        public float* Values => (float*)Unsafe.AsPointer(ref _values[0]);

        public void Fill(float* map)
        {
            int offset = 0;
            for (int step = 64; step > 0; step >>= 1)
            {
                int candidates = 128 / step;
                for (int j = 0; j < candidates; j++)
                    _values[offset + j] = map[j * 2 * step + step - 1];
                offset += Math.Max(candidates, Vector512<float>.Count);
            }
        }
    }

    /// <summary>values[i] = map[codes[i]] · absmax[i / blockSize].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    /// <summary>
    /// <see cref="NearestCodes8"/> for 16 values with the candidate codes looked up by register permutes from
    /// <see cref="SearchLevels"/> and the map instead of gathers (slow on processors with the gather data sampling
    /// mitigation): the same comparisons and the same midpoint arithmetic.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NearestCodes16(float* map, float* levels, Vector512<float> x, byte* codes)
    {
        var pos = Vector512.GreaterThan(x, Vector512.Create(map[127])).AsInt32() & Vector512.Create(128);
        Vector512<float> value = default;
        int offset = 0;
        for (int step = 64, shift = 7; step > 0; step >>= 1, shift--)
        {
            int candidates = 128 / step;
            value = Lookup(levels + offset, candidates, Vector512.ShiftRightLogical(pos, shift));
            pos += Vector512.GreaterThan(x, value).AsInt32() & Vector512.Create(step);
            offset += Math.Max(candidates, Vector512<float>.Count);
        }
        var one = Vector512.Create(1);
        var above = Vector512.Equals(pos & one, one);
        var neighbour = Vector512.ConditionalSelect(above, pos, Vector512.Max(pos - one, Vector512<int>.Zero));
        var midpoint = (Lookup(map, DynamicMap.Size, neighbour) + value) * Vector512.Create(0.5f);
        var fromAbove = pos - one - Vector512.GreaterThan(x, midpoint).AsInt32();
        var fromBelow = Vector512.ConditionalSelect(Vector512.LessThan(x, midpoint).AsInt32(), neighbour, pos);
        Avx512F.ConvertToVector128Byte(Vector512.ConditionalSelect(above, fromAbove, fromBelow)).Store(codes);
    }

    /// <summary>table[index] per lane for a table of <paramref name="entries"/> floats (a power of two, padded to 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Lookup(float* table, int entries, Vector512<int> index)
    {
        if (entries <= Vector512<float>.Count)
            return Avx512F.PermuteVar16x32(Vector512.Load(table), index);
        // Each two-register permute reads 32 entries by the index's low 5 bits; the high bits pick the result.
        var result = Avx512F.PermuteVar16x32x2(Vector512.Load(table), index, Vector512.Load(table + 16));
        for (int first = 32; first < entries; first += 32)
        {
            var part = Avx512F.PermuteVar16x32x2(Vector512.Load(table + first), index, Vector512.Load(table + first + 16));
            var inPart = Vector512.Equals(index & Vector512.Create(~31), Vector512.Create(first));
            result = Vector512.ConditionalSelect(inPart.AsSingle(), part, result);
        }
        return result;
    }

    private static void ValidateMap(ReadOnlySpan<float> map)
    {
        if (map.Length != DynamicMap.Size)
            throw new ArgumentException($"a code map has {DynamicMap.Size} values, not {map.Length}", nameof(map));
    }
}
