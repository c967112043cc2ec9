using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

public class FourBitCodebookTests
{
    // Independently typed from bitsandbytes' get_4bit_type.
    private static readonly float[] s_nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
        0.7229568362236023f, 1.0f,
    ];

    private static readonly float[] s_fp4Magnitudes = [0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f];

    [Fact]
    public void Nf4_IsBitExact()
    {
        Assert.Equal(s_nf4.Select(BitConverter.SingleToInt32Bits), FourBitCodebook.Nf4.ToArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Fp4_IsTheListDividedByTwelveInFloat32()
    {
        float twelve = s_fp4Magnitudes[3];
        float[] expected = [.. s_fp4Magnitudes.Select(v => v / twelve), .. s_fp4Magnitudes.Select(v => -v / twelve)];
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), FourBitCodebook.Fp4.ToArray().Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(0.00520833349f, FourBitCodebook.Fp4[1]);
    }

    [Fact]
    public void EachCodeValue_QuantizesToItself()
    {
        for (int code = 0; code < 16; code++)
            Assert.Equal(code, FourBitCodebook.QuantizeNf4(FourBitCodebook.Nf4[code]));
        for (int code = 0; code < 16; code++)
            // −0 is not below zero, so the kernel gives it the +0 code.
            Assert.Equal(code == 8 ? 0 : code, FourBitCodebook.QuantizeFp4(FourBitCodebook.Fp4[code]));
    }

    [Theory]
    [InlineData(1f, 0b1111, 0b0011)]
    [InlineData(-0.5f, 0b0010, 0b1101)]
    [InlineData(0.2f, 0b1001, 0b0110)]
    [InlineData(0f, 0b0111, 0b0000)]
    [InlineData(0.03979014977812767f, 0b0111, 0b0001)] // on the NF4 threshold: strict '>' keeps the lower code
    [InlineData(0.0859375f, 0b1000, 0b0001)]           // on the FP4 pivot: stays on 0.0625/12
    [InlineData(-0.0859376f, 0b0110, 0b1110)]
    public void HandPickedValues(float x, int nf4, int fp4)
    {
        Assert.Equal(nf4, FourBitCodebook.QuantizeNf4(x));
        Assert.Equal(fp4, FourBitCodebook.QuantizeFp4(x));
    }

    [Theory]
    [InlineData(FourBitType.Nf4)]
    [InlineData(FourBitType.Fp4)]
    public void KernelRule_PicksTheNearestCodeAwayFromThresholds(FourBitType type)
    {
        ReadOnlySpan<float> book = FourBitCodebook.For(type);
        var random = new Random(3);
        for (int trial = 0; trial < 20000; trial++)
        {
            float x = (float)(random.NextDouble() * 2 - 1);
            int chosen = FourBitCodebook.Quantize(type, x);
            double best = double.MaxValue;
            foreach (float value in book)
                best = Math.Min(best, Math.Abs(value - x));
            // The kernel's thresholds are midpoints rounded to a few digits, so only near-ties may differ.
            Assert.True(Math.Abs(book[chosen] - x) - best < 1e-6, $"{type}: x = {x} → code {chosen} ({book[chosen]}), nearest is {best} away");
        }
    }
}
