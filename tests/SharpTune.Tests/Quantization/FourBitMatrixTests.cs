using SharpTune.Engine;
using SharpTune.Quantization;
using static SharpTune.Tests.Quantization.QuantTestSupport;

namespace SharpTune.Tests.Quantization;

public class FourBitMatrixTests
{
    private static float Nf4(int code) => FourBitCodebook.Nf4[code];
    private static float Fp4(int code) => FourBitCodebook.Fp4[code];

    /// <summary>Row 0: 2·NF4[j mod 16] (absmax 2, every code in order); row 1: 0.5, −0.25, 0.1, then zeros (absmax 0.5).</summary>
    private static float[] TwoBlockWeight()
    {
        var w = new float[128];
        for (int j = 0; j < 64; j++)
            w[j] = 2f * Nf4(j % 16);
        w[64] = 0.5f;
        w[65] = -0.25f;
        w[66] = 0.1f;
        return w;
    }

    [Fact]
    public void Nf4_KnownTensor_AbsmaxCodesAndPackedBytes()
    {
        FourBitMatrix q = FourBit(TwoBlockWeight(), 2, 64, FourBitType.Nf4, doubleQuantization: false);
        Assert.Equal([2f, 0.5f], q.Absmax.ToArray());
        byte[] packed = q.PackedCodes.ToArray();
        Assert.Equal(64, packed.Length);
        // Row 0 codes run 0, 1, …, 15 twice per 32 bytes: the first of each pair in the high nibble.
        Assert.Equal([0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF], packed[..8]);
        Assert.Equal(packed[..8], packed[8..16]);
        // Row 1 normalised: 1 → 15; −0.5 → 0b0010 (−0.525); 0.2 → 0b1001 (0.161); 0 → 0b0111.
        Assert.Equal([0xF2, 0x97, 0x77], packed[32..35]);
        Assert.All(packed[35..], b => Assert.Equal(0x77, b));

        float[] restored = ReadAll(q);
        for (int j = 0; j < 64; j++)
            Assert.Equal(Nf4(j % 16) * 2f, restored[j]);
        Assert.Equal([0.5f, Nf4(2) * 0.5f, Nf4(9) * 0.5f, 0f], restored[64..68]);
        Assert.Equal(-0.26253652572631836f, restored[65], 7);
    }

    [Fact]
    public void Fp4_KnownTensor_CodesAndValues()
    {
        FourBitMatrix q = FourBit(TwoBlockWeight(), 2, 64, FourBitType.Fp4, doubleQuantization: false);
        byte[] packed = q.PackedCodes.ToArray();
        // Row 1 normalised: 1 → 0b0011; −0.5 → 0b1101; 0.2 → 0b0110 (2/12); 0 → 0.
        Assert.Equal([0x3D, 0x60, 0x00], packed[32..35]);
        float[] restored = ReadAll(q);
        Assert.Equal([0.5f, -0.25f, Fp4(6) * 0.5f, 0f], restored[64..68]);
        Assert.Equal(1f / 12f, restored[66], 7);
    }

    [Fact]
    public void DoubleQuantization_KnownAbsmax_OffsetCodesAndScale()
    {
        // Four blocks with absmax 1, 2, 3, 6: offset = mean = 3; absmax − offset = −2, −1, 0, 3; second-level
        // absmax 3; normalised −2/3, −1/3, 0, 1.
        float[] absmax = [1f, 2f, 3f, 6f];
        var w = new float[256];
        for (int j = 0; j < 256; j++)
            w[j] = absmax[j / 64] * Nf4(j % 16);
        FourBitMatrix q = FourBit(w, 4, 64, FourBitType.Nf4, doubleQuantization: true);

        Assert.True(q.Absmax.IsEmpty);
        Assert.Equal(3f, q.AbsmaxOffset);
        Assert.Equal([3f], q.AbsmaxScales.ToArray());
        // Signed dynamic map: negative decade-10^0 codes −(0.1 + 0.0140625·(k + 0.5)) sit at index 63 − k.
        // −2/3 → k = 40 (−0.66953125, index 23); −1/3 → k = 16 (−0.33203125, index 47); 0 → 127; 1 → 255.
        Assert.Equal([23, 47, 127, 255], q.QuantizedAbsmax.ToArray().Select(b => (int)b));
        float[] map = DynamicMap.Signed();
        float[] restoredAbsmax = [map[23] * 3f + 3f, map[47] * 3f + 3f, 3f, 6f];
        Assert.Equal(0.99140625f, restoredAbsmax[0], 6);
        Assert.Equal(2.00390625f, restoredAbsmax[1], 6);
        for (int b = 0; b < 4; b++)
            Assert.Equal(restoredAbsmax[b], q.BlockAbsmax(b));

        float[] restored = ReadAll(q);
        for (int j = 0; j < 256; j++)
            Assert.Equal(Nf4(j % 16) * restoredAbsmax[j / 64], restored[j]);
        Assert.Equal(128 + 4 + 4 + 4, q.StorageBytes);
    }

    [Fact]
    public void OddSizes_PartialLastBlockAndHalfFilledLastByte()
    {
        // 3×5 = 15 values: one partial block, 8 bytes with the last low nibble unused.
        float[] w = [4f, -4f, 2f, 1f, 0f, 0.5f, -1f, 3f, -2f, 0.25f, 1.5f, -3f, 0.75f, 2.5f, -0.5f];
        FourBitMatrix q = FourBit(w, 3, 5, FourBitType.Nf4, doubleQuantization: false);
        Assert.Equal([4f], q.Absmax.ToArray());
        Assert.Equal(8, q.PackedCodes.Length);
        Assert.Equal(0, q.PackedCodes[7] & 0x0F);
        float[] restored = ReadAll(q);
        for (int i = 0; i < w.Length; i++)
            Assert.Equal(Nf4(FourBitCodebook.QuantizeNf4(w[i] * (1f / 4f))) * 4f, restored[i]);
        var row2 = new float[5];
        q.ReadRows(2, 1, row2);
        Assert.Equal(restored[10..], row2);
    }

    [Fact]
    public unsafe void Bf16Weight_QuantizesLikeItsWidenedValues()
    {
        float[] values = Gaussian(96 * 70, 11, 0.02f);
        var bf16 = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bf16[i] = BFloat16.FromSingle(values[i]);
            values[i] = BFloat16.ToSingle(bf16[i]);
        }
        FourBitMatrix fromBf16;
        fixed (ushort* p = bf16)
            fromBf16 = FourBitMatrix.Quantize(new WeightMatrix(p, DType.BF16, 96, 70), FourBitType.Nf4, true);
        FourBitMatrix fromF32 = FourBit(values, 96, 70, FourBitType.Nf4, true);
        Assert.Equal(fromF32.PackedCodes.ToArray(), fromBf16.PackedCodes.ToArray());
        Assert.Equal(fromF32.QuantizedAbsmax.ToArray(), fromBf16.QuantizedAbsmax.ToArray());
        Assert.Equal(ReadAll(fromF32), ReadAll(fromBf16));
    }

    [Theory]
    [InlineData(FourBitType.Nf4, false, 0.030, 0.1520)]
    [InlineData(FourBitType.Nf4, true, 0.030, 0.1520)]
    [InlineData(FourBitType.Fp4, false, 0.040, 0.1667)]
    public void GaussianRoundTrip_ErrorWithinTheFormatsBound(FourBitType type, bool doubleQuantization, double meanBound, double gapBound)
    {
        const int rows = 64, cols = 512;
        float[] w = Gaussian(rows * cols, 5, 0.03f);
        FourBitMatrix q = FourBit(w, rows, cols, type, doubleQuantization);
        float[] restored = ReadAll(q);
        double errorSum = 0, absmaxSum = 0;
        for (int b = 0; b < q.BlockCount; b++)
        {
            float absmax = 0;
            for (int i = b * 64; i < (b + 1) * 64; i++)
                absmax = Math.Max(absmax, Math.Abs(w[i]));
            absmaxSum += absmax * 64;
            for (int i = b * 64; i < (b + 1) * 64; i++)
            {
                double error = Math.Abs(restored[i] - w[i]);
                errorSum += error;
                // Nearest rounding: at most half the widest gap between adjacent codes (NF4 −1→−0.6962, FP4 2/3→1),
                // plus the double quantisation's error on the absmax itself.
                Assert.True(error <= gapBound * absmax + Math.Abs(q.BlockAbsmax(b) - absmax) + 1e-7, $"element {i}: {error} vs absmax {absmax}");
            }
            if (doubleQuantization)
                Assert.True(Math.Abs(q.BlockAbsmax(b) - absmax) < 0.01 * absmax);
        }
        // Mean abs error relative to the mean absmax (measured 0.0280 NF4, 0.0369 FP4 on these Gaussian blocks of 64).
        Assert.InRange(errorSum / absmaxSum, 0.02, meanBound);
    }

    [Fact]
    public void StorageBytes_HalfAByteAParamPlusScales()
    {
        const int rows = 128, cols = 1024;
        float[] w = Gaussian(rows * cols, 2);
        long n = rows * cols;
        FourBitMatrix plain = FourBit(w, rows, cols, FourBitType.Nf4, false);
        FourBitMatrix nested = FourBit(w, rows, cols, FourBitType.Nf4, true);
        Assert.Equal(n / 2 + 4 * (n / 64), plain.StorageBytes);                       // 0.5625 byte/param
        Assert.Equal(n / 2 + n / 64 + 4 * (n / 64 / 256) + 4, nested.StorageBytes);   // ≈ 0.5157 byte/param
        Assert.True(nested.StorageBytes < plain.StorageBytes);
    }

    [Theory]
    [InlineData(FourBitType.Nf4, true)]
    [InlineData(FourBitType.Fp4, false)]
    public void Products_MatchTheDequantisedMatrixTightly_AndTheOriginalLoosely(FourBitType type, bool doubleQuantization)
    {
        // 1100 rows of 256 columns: five 256-row tiles, the last partial; m = 5.
        const int rows = 1100, cols = 256, m = 5;
        float[] w = Gaussian(rows * cols, 9, 0.05f);
        IFrozenMatrix q = FourBit(w, rows, cols, type, doubleQuantization);
        float[] dequantised = ReadAll(q);
        float[] x = Gaussian(m * cols, 10);
        float[] dy = Gaussian(m * rows, 12);

        var y = new float[m * rows];
        q.MultiplyTransposed(x, m, y);
        Assert.True(RelativeMaxError(y, NaiveTransposed(x, m, dequantised, rows, cols)) < 1e-5);
        Assert.InRange(RelativeMaxError(y, NaiveTransposed(x, m, w, rows, cols)), 1e-4, 0.2);

        var dx = new float[m * cols];
        Array.Fill(dx, 123f);
        q.Multiply(dy, m, dx, accumulate: false);
        double[] expected = Naive(dy, m, dequantised, rows, cols);
        Assert.True(RelativeMaxError(dx, expected) < 1e-5);
        Assert.InRange(RelativeMaxError(dx, Naive(dy, m, w, rows, cols)), 1e-4, 0.2);

        q.Multiply(dy, m, dx, accumulate: true);
        Assert.True(RelativeMaxError(dx, expected.Select(v => 2 * v).ToArray()) < 1e-5);
    }

    [Fact]
    public void Quantizer_DispatchesOnBits_AndRejectsOthers()
    {
        float[] w = Gaussian(64 * 4, 1);
        Assert.IsType<FourBitMatrix>(Quantize(w, 4, 64, new QuantizationOptions(4)));
        Assert.IsType<Int8Matrix>(Quantize(w, 4, 64, new QuantizationOptions(8)));
        var e = Assert.Throws<ArgumentException>(() => Quantize(w, 4, 64, new QuantizationOptions(3)));
        Assert.StartsWith("quantization bits must be 4 or 8, not 3", e.Message);
    }

    [Fact]
    public void BadOperands_GiveOneLineMessages()
    {
        IFrozenMatrix q = FourBit(Gaussian(64 * 4, 1), 4, 64, FourBitType.Nf4, false);
        var e = Assert.Throws<ArgumentException>(() => q.MultiplyTransposed(new float[63], 1, new float[4]));
        Assert.StartsWith("x holds 63 values, need 1×64 = 64", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => q.ReadRows(3, 2, new float[128]));
    }
}
