using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

public class Float16ConversionTests
{
    private static ushort Bf16(uint floatBits) => BFloat16.FromSingle(BitConverter.UInt32BitsToSingle(floatBits));

    [Theory]
    [InlineData(0x3F80_8000u, 0x3F80)] // exactly halfway, even below → down
    [InlineData(0x3F81_8000u, 0x3F82)] // exactly halfway, odd below → up to even
    [InlineData(0x3F80_8001u, 0x3F81)] // just above halfway → up
    [InlineData(0x3F80_7FFFu, 0x3F80)] // just below halfway → down
    [InlineData(0xBF81_8000u, 0xBF82)] // negative tie → even, magnitude up
    [InlineData(0x7F7F_FFFFu, 0x7F80)] // float max rounds past bf16 max → +Inf
    [InlineData(0x7F7F_7FFFu, 0x7F7F)] // just below the overflow midpoint → bf16 max
    [InlineData(0x7F80_0000u, 0x7F80)] // +Inf
    [InlineData(0xFF80_0000u, 0xFF80)] // -Inf
    [InlineData(0x0000_0000u, 0x0000)] // +0
    [InlineData(0x8000_0000u, 0x8000)] // -0
    [InlineData(0x0000_8000u, 0x0000)] // denormal tie → even (zero)
    [InlineData(0x0001_8000u, 0x0002)] // denormal tie → even (up)
    [InlineData(0x0000_0001u, 0x0000)] // smallest denormal → 0
    [InlineData(0x007F_FFFFu, 0x0080)] // largest denormal rounds up to the smallest normal
    [InlineData(0x8001_0000u, 0x8001)] // exact negative denormal
    public void BFloat16_FromSingle_RoundsToNearestEven(uint input, int expected) =>
        Assert.Equal((ushort)expected, Bf16(input));

    [Theory]
    [InlineData(0x7FC0_0000u)]
    [InlineData(0x7F80_0001u)] // signalling NaN with only low payload bits must not truncate to Inf
    [InlineData(0xFFFF_FFFFu)]
    [InlineData(0x7FFF_FFFFu)] // rounding would carry into the sign bit without the NaN path
    public void BFloat16_FromSingle_KeepsNaNQuiet(uint input)
    {
        ushort result = Bf16(input);
        Assert.True(float.IsNaN(BFloat16.ToSingle(result)));
        Assert.Equal(input >> 31, (uint)result >> 15);
        Assert.NotEqual(0, result & 0x0040);
    }

    [Fact]
    public void BFloat16_FromSingle_MatchesNearestEvenOnRandomFiniteValues()
    {
        var rng = new Random(1234);
        for (int i = 0; i < 200_000; i++)
        {
            uint bits = (uint)rng.NextInt64(0, 1L << 32);
            float value = BitConverter.UInt32BitsToSingle(bits);
            if (!float.IsFinite(value)) continue;
            Assert.Equal(ReferenceRound(bits), BFloat16.FromSingle(value));
        }
    }

    [Fact]
    public void BFloat16_RoundTripsEveryBf16Value()
    {
        for (int h = 0; h < 65536; h++)
        {
            float f = BFloat16.ToSingle((ushort)h);
            if (float.IsNaN(f)) continue;
            Assert.Equal((ushort)h, BFloat16.FromSingle(f));
        }
    }

    [Theory]
    [InlineData(1.00048828125f, 1.0f)] // 1 + 2^-11: tie between 1 and 1 + 2^-10 → even (1)
    [InlineData(1.00146484375f, 1.001953125f)] // 1 + 3·2^-11: tie → even (1 + 2^-9)
    [InlineData(65504f, 65504f)] // half max
    [InlineData(65519.996f, 65504f)] // below the overflow midpoint
    [InlineData(65520f, float.PositiveInfinity)] // overflow midpoint ties to even → Inf
    [InlineData(2.9802322e-8f, 0f)] // 2^-25: tie between 0 and the smallest denormal → 0
    [InlineData(4.4703484e-8f, 5.9604645e-8f)] // 1.5·2^-25 → smallest denormal 2^-24
    [InlineData(float.NegativeInfinity, float.NegativeInfinity)]
    public void Float16_FromSingle_RoundsToNearestEven(float input, float expected)
    {
        var half = new Half[1];
        Float16.FromSingle([input], half);
        var back = new float[1];
        Float16.ToSingle(half, back);
        Assert.Equal(expected, back[0]);
    }

    [Fact]
    public void Float16_KeepsNaN()
    {
        var half = new Half[1];
        Float16.FromSingle([float.NaN], half);
        Assert.True(Half.IsNaN(half[0]));
    }

    [Fact]
    public void SpanNarrowingToBf16EqualsTheScalarRoundingForEveryKindOfValue()
    {
        var random = new Random(11);
        var special = new uint[] { 0x3F80_8000, 0x3F81_8000, 0x7F7F_FFFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x0000_8000, 0x8000_0001, 0 };
        float[] values = [.. special.Select(BitConverter.UInt32BitsToSingle),
            .. Enumerable.Range(0, 4093).Select(_ => BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)))];
        var narrowed = new ushort[values.Length];

        BFloat16.FromSingle(values, narrowed);

        for (int i = 0; i < values.Length; i++)
            Assert.Equal(BFloat16.FromSingle(values[i]), narrowed[i]);
    }

    /// <summary>Nearest bf16 by exact comparison of the two neighbours' distances (in double), ties to even.</summary>
    private static ushort ReferenceRound(uint bits)
    {
        uint low = bits & 0xFFFF_0000u;
        uint high = low + 0x1_0000u;
        double value = BitConverter.UInt32BitsToSingle(bits);
        double lowValue = BitConverter.UInt32BitsToSingle(low);
        double highValue = (high & 0x7F80_0000u) == 0x7F80_0000u && (high & 0x007F_FFFFu) == 0
            ? Math.CopySign(Math.Pow(2, 128), value)
            : BitConverter.UInt32BitsToSingle(high);
        double dLow = Math.Abs(value - lowValue), dHigh = Math.Abs(highValue - value);
        if (dLow < dHigh) return (ushort)(low >> 16);
        if (dHigh < dLow) return (ushort)(high >> 16);
        return (ushort)(((low >> 16) & 1) == 0 ? low >> 16 : high >> 16);
    }
}
