namespace SharpTune.Quantization;

/// <summary>
/// bitsandbytes' dynamic 8-bit data type (<c>functional.create_dynamic_map(signed, max_exponent_bits=7,
/// total_bits=8)</c>, after Dettmers, "8-Bit Approximations for Parallelism in Deep Learning"): 256 sorted float32
/// values in [-1, 1] (signed) or [0, 1] (unsigned), dense near zero. Used as the code book of the double-quantised
/// 4-bit absmax values and of blockwise 8-bit quantisation.
/// </summary>
/// <remarks>
/// Reproduced bit for bit: for each decade i = 0..6 the fraction boundaries are <c>torch.linspace(0.1, 1, n)</c>
/// in float32 (PyTorch's CPU rule: <c>start + step·k</c> for the first half, <c>end − step·(n−1−k)</c> for the
/// second, step = (end − start)/(n − 1), all in float32), the values are the float32 means of adjacent boundaries
/// times the decade 10^(i−6) rounded to float32 (a tensor-times-Python-scalar product is computed in the tensor's
/// dtype), negated copies for the signed map, then 0 and 1 are appended and the list is sorted.
/// </remarks>
public static class DynamicMap
{
    public const int Size = 256;
    private const int MaxExponentBits = 7;
    private const int NonSignBits = 7;

    private static readonly float[] s_signed = Create(signed: true);
    private static readonly float[] s_unsigned = Create(signed: false);

    /// <summary>The signed map (create_dynamic_map(signed=True)); a fresh copy the caller may keep.</summary>
    public static float[] Signed() => (float[])s_signed.Clone();

    /// <summary>The unsigned map (create_dynamic_map(signed=False)); a fresh copy the caller may keep.</summary>
    public static float[] Unsigned() => (float[])s_unsigned.Clone();

    /// <summary>The shared signed map, read-only.</summary>
    internal static ReadOnlySpan<float> SignedShared => s_signed;

    private static float[] Create(bool signed)
    {
        var data = new List<float>(Size);
        for (int i = 0; i < MaxExponentBits; i++)
        {
            int fractionItems = signed
                ? (1 << (i + NonSignBits - MaxExponentBits)) + 1
                : (1 << (i + NonSignBits - MaxExponentBits + 1)) + 1;
            float[] boundaries = LinspaceFloat32(0.1f, 1f, fractionItems);
            // Python evaluates 10 ** (i - 6) in double; PyTorch then rounds the scalar to the tensor's float32.
            float decade = (float)Math.Pow(10, i - (MaxExponentBits - 1));
            for (int k = 0; k + 1 < boundaries.Length; k++)
            {
                float mean = (boundaries[k] + boundaries[k + 1]) / 2f;
                data.Add(decade * mean);
            }
            if (signed)
                for (int k = 0; k + 1 < boundaries.Length; k++)
                {
                    float mean = (boundaries[k] + boundaries[k + 1]) / 2f;
                    data.Add(-decade * mean);
                }
        }
        // additional_items = 2^(non_sign_bits − max_exponent_bits) − 1 = 0 for the 8-bit, 7-exponent-bit map.
        data.Add(0f);
        data.Add(1f);
        if (data.Count != Size)
            throw new InvalidOperationException($"dynamic map has {data.Count} values, expected {Size}");
        float[] map = data.ToArray();
        Array.Sort(map);
        return map;
    }

    /// <summary>torch.linspace(start, end, steps) for a float32 tensor, as PyTorch's CPU kernel computes it.</summary>
    internal static float[] LinspaceFloat32(float start, float end, int steps)
    {
        var values = new float[steps];
        if (steps == 1)
        {
            values[0] = start;
            return values;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int k = 0; k < steps; k++)
            values[k] = k < halfway ? start + step * k : end - step * (steps - k - 1);
        return values;
    }
}
