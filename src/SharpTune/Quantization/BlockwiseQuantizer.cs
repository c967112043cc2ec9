namespace SharpTune.Quantization;

/// <summary>
/// bitsandbytes' blockwise 8-bit quantisation with a 256-entry code map (<c>functional.quantize_blockwise</c> /
/// <c>dequantize_blockwise</c>, kernels <c>kQuantizeBlockwise</c> / <c>kDequantizeBlockwise</c> with the General8bit
/// data type): every block of <c>blockSize</c> consecutive values keeps its absmax in fp32, each value is scaled
/// by the reciprocal of that absmax and replaced by the index of the nearest code; dequantisation is
/// <c>map[code] · absmax</c>.
/// </summary>
public static class BlockwiseQuantizer
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

        for (int block = 0; block < blocks; block++)
        {
            int first = block * blockSize;
            ReadOnlySpan<float> blockValues = values.Slice(first, Math.Min(blockSize, values.Length - first));
            float max = AbsMax(blockValues);
            absmax[block] = max;
            // The kernel multiplies by the reciprocal rather than dividing; an all-zero block gives 0·∞ = NaN,
            // which the search sends to the same code the kernel picks, and dequantises to ±0 either way.
            float reciprocal = 1f / max;
            for (int i = 0; i < blockValues.Length; i++)
                codes[first + i] = NearestCode(map, blockValues[i] * reciprocal);
        }
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

        for (int i = 0; i < values.Length; i++)
            values[i] = map[codes[i]] * absmax[i / blockSize];
    }

    /// <summary>Largest |value|, starting from −FLT_MAX as the kernel's reduction does.</summary>
    internal static float AbsMax(ReadOnlySpan<float> values)
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

    private static void ValidateMap(ReadOnlySpan<float> map)
    {
        if (map.Length != DynamicMap.Size)
            throw new ArgumentException($"a code map has {DynamicMap.Size} values, not {map.Length}", nameof(map));
    }
}
