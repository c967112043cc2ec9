using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

/// <summary>
/// The vectorised search in <see cref="BlockwiseQuantizer.Quantize"/> must give exactly the code of the scalar
/// <see cref="BlockwiseQuantizer.NearestCode"/> (bitsandbytes' dQuantize&lt;0&gt;, kept as the reference) for every
/// float: checked at every decision boundary, on special values and on a large random sample, for both dynamic
/// maps and for an arbitrary map.
/// </summary>
public class BlockwiseQuantizerVectorTests
{
    private const int UlpsAroundBoundary = 4;

    public static TheoryData<string> Maps => ["signed", "unsigned"];

    private static float[] Map(string name) => name == "signed" ? DynamicMap.Signed() : DynamicMap.Unsigned();

    [Theory]
    [MemberData(nameof(Maps))]
    public void EveryBoundary_MatchesTheScalarSearch(string name)
    {
        float[] map = Map(name);
        var values = new List<float>();
        // The search compares against each code and decides between neighbours at their float midpoint.
        for (int i = 0; i < map.Length; i++)
        {
            AddAround(values, map[i]);
            if (i + 1 < map.Length)
                AddAround(values, (map[i] + map[i + 1]) * 0.5f);
        }
        foreach (float special in SpecialValues())
            AddAround(values, special);
        AssertMatchesScalar(map, values.ToArray());
    }

    [Fact]
    public void MidpointTie_StaysOnTheEvenPivot_AsTheScalarDoes()
    {
        float[] map = DynamicMap.Signed();
        float tie = (map[219] + map[220]) * 0.5f;
        float[] values = [.. Enumerable.Repeat(tie, 15), MathF.BitDecrement(tie)];
        var codes = Codes(map, values, BlockwiseQuantizer.FastestKernel);
        Assert.Equal([.. Enumerable.Repeat(220, 15), 219], codes.Select(c => (int)c));
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void RandomSample_MatchesTheScalarSearch(string name)
    {
        float[] map = Map(name);
        var random = new Random(11);
        var values = new float[300_000];
        for (int i = 0; i < values.Length; i++)
            values[i] = (i % 3) switch
            {
                // Any bit pattern: every exponent, subnormals, infinities and NaNs.
                0 => BitConverter.Int32BitsToSingle(random.Next() ^ (random.Next(2) << 31)),
                1 => (float)(random.NextDouble() * 2.2 - 1.1),
                _ => (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, -random.Next(8))),
            };
        AssertMatchesScalar(map, values);
    }

    [Fact]
    public void UnsortedMapWithNaN_MatchesTheScalarSearch()
    {
        // The vector search makes the scalar's comparisons in the scalar's order, so it agrees even on a map that
        // is not sorted.
        var random = new Random(5);
        var map = new float[DynamicMap.Size];
        for (int i = 0; i < map.Length; i++)
            map[i] = (float)(random.NextDouble() * 2 - 1);
        map[40] = float.NaN;
        var values = new float[20_000];
        for (int i = 0; i < values.Length; i++)
            values[i] = i % 97 == 0 ? map[random.Next(map.Length)] : (float)(random.NextDouble() * 2.4 - 1.2);
        AssertMatchesScalar(map, values);
    }

    [Theory]
    [InlineData(256, 4096 + 37)]
    [InlineData(37, 1000)]
    [InlineData(5, 3)]
    public void QuantizeAndDequantize_MatchTheScalarDefinition(int blockSize, int count)
    {
        float[] map = DynamicMap.Signed();
        var random = new Random(blockSize);
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, -random.Next(4)));
        // A zero block (absmax 0) and a block holding a NaN (scalar max propagates it).
        if (count > 2 * blockSize)
        {
            Array.Clear(values, blockSize, blockSize);
            values[2 * blockSize + 1] = float.NaN;
        }
        int blocks = BlockwiseQuantizer.BlockCount(count, blockSize);
        var codes = new byte[count];
        var absmax = new float[blocks];
        BlockwiseQuantizer.Quantize(values, blockSize, map, codes, absmax);

        for (int b = 0; b < blocks; b++)
        {
            int first = b * blockSize;
            int length = Math.Min(blockSize, count - first);
            float max = -float.MaxValue;
            for (int i = first; i < first + length; i++)
                max = MathF.Max(max, MathF.Abs(values[i]));
            Assert.Equal(BitConverter.SingleToInt32Bits(max), BitConverter.SingleToInt32Bits(absmax[b]));
            float reciprocal = 1f / max;
            for (int i = first; i < first + length; i++)
                Assert.Equal(BlockwiseQuantizer.NearestCode(map, values[i] * reciprocal), codes[i]);
        }

        var restored = new float[count];
        BlockwiseQuantizer.Dequantize(codes, absmax, blockSize, map, restored);
        for (int i = 0; i < count; i++)
            Assert.Equal(BitConverter.SingleToInt32Bits(map[codes[i]] * absmax[i / blockSize]), BitConverter.SingleToInt32Bits(restored[i]));
    }

    private static IEnumerable<float> SpecialValues() =>
    [
        0f, -0f, 1f, -1f, 1.5f, -1.5f, 2f, -2f, 1e30f, -1e30f, float.MaxValue, -float.MaxValue,
        float.Epsilon, -float.Epsilon, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN,
    ];

    private static void AddAround(List<float> values, float center)
    {
        values.Add(center);
        float below = center, above = center;
        for (int k = 0; k < UlpsAroundBoundary; k++)
        {
            below = MathF.BitDecrement(below);
            above = MathF.BitIncrement(above);
            values.Add(below);
            values.Add(above);
        }
    }

    private static byte[] Codes(float[] map, float[] values, BlockwiseQuantizer.SearchKernel kernel)
    {
        var codes = new byte[values.Length];
        BlockwiseQuantizer.NearestCodes(kernel, map, values, 1f, codes);
        return codes;
    }

    /// <summary>Every vector search this processor runs (AVX2 gathers, AVX-512 permutes) against the scalar search.</summary>
    private static void AssertMatchesScalar(float[] map, float[] values)
    {
        for (var kernel = BlockwiseQuantizer.SearchKernel.Avx2; kernel <= BlockwiseQuantizer.FastestKernel; kernel++)
        {
            var codes = Codes(map, values, kernel);
            for (int i = 0; i < values.Length; i++)
            {
                byte expected = BlockwiseQuantizer.NearestCode(map, values[i]);
                if (codes[i] != expected)
                    Assert.Fail($"{kernel}: x = {values[i]:R} (0x{BitConverter.SingleToInt32Bits(values[i]):X8}): vector code {codes[i]}, scalar {expected}");
            }
        }
    }
}
