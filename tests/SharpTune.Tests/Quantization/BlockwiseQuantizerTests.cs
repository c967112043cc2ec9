using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

public class BlockwiseQuantizerTests
{
    private static readonly float[] s_map = DynamicMap.Signed();

    // Signed map indices worked out by hand: decade 10^0 means are 0.1 + 0.0140625·(k + 0.5) at index 191 + k.
    private const int Half = 191 + 28;          // 0.50078125 is the code nearest 0.5 (0.48671875 is 0.0133 away)
    private const int Quarter = 191 + 10;       // 0.24765625 is nearer 0.25 than 0.26171875
    private const int Zero = 127;
    private const int One = 255;
    private const int MinusMax = 0;             // -0.99296875, the code nearest -1

    [Fact]
    public void Quantize_SingleBlock_KnownCodes()
    {
        float[] values = [0.5f, -1f, 0.25f, 0f];
        var codes = new byte[4];
        var absmax = new float[1];
        BlockwiseQuantizer.Quantize(values, 4, s_map, codes, absmax);
        Assert.Equal(1f, absmax[0]);
        Assert.Equal([Half, MinusMax, Quarter, Zero], codes.Select(c => (int)c));

        var restored = new float[4];
        BlockwiseQuantizer.Dequantize(codes, absmax, 4, s_map, restored);
        Assert.Equal([s_map[Half], s_map[MinusMax], s_map[Quarter], 0f], restored);
        Assert.Equal(0.50078125f, restored[0], 6);
        Assert.Equal(0.24765625f, restored[2], 6);
    }

    [Fact]
    public void Quantize_KeepsOneAbsmaxPerBlock_AndAPartialLastBlock()
    {
        float[] values = [0.2f, -0.4f, 3f, 1.5f, -0.125f];
        var codes = new byte[5];
        var absmax = new float[3];
        BlockwiseQuantizer.Quantize(values, 2, s_map, codes, absmax);
        Assert.Equal([0.4f, 3f, 0.125f], absmax);
        // Normalised: 0.5, -1 | 1, 0.5 | -1.
        Assert.Equal([Half, MinusMax, One, Half, MinusMax], codes.Select(c => (int)c));

        var restored = new float[5];
        BlockwiseQuantizer.Dequantize(codes, absmax, 2, s_map, restored);
        Assert.Equal([s_map[Half] * 0.4f, s_map[MinusMax] * 0.4f, 3f, s_map[Half] * 3f, s_map[MinusMax] * 0.125f], restored);
    }

    [Fact]
    public void NearestCode_MatchesArgminAwayFromMidpoints()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 20000; trial++)
        {
            // Half of the samples near zero, where the map is densest.
            float x = trial % 2 == 0 ? (float)(random.NextDouble() * 2 - 1) : (float)((random.NextDouble() * 2 - 1) * 1e-3);
            int best = 0;
            for (int i = 1; i < s_map.Length; i++)
                if (Math.Abs(s_map[i] - x) < Math.Abs(s_map[best] - x))
                    best = i;
            int chosen = BlockwiseQuantizer.NearestCode(s_map, x);
            if (chosen != best)
                Assert.Equal(Math.Abs(s_map[best] - x), Math.Abs(s_map[chosen] - x), 1e-7);
        }
    }

    [Fact]
    public void NearestCode_TieAtMidpointStaysOnThePivot()
    {
        // x = 0.5·(map[219] + map[220]) ≈ 0.507: the search visits 127, 191, 223, 207, 215, 219, 221 and ends on
        // pivot 220 with lower bracket 219; x is not below the midpoint of 219 and 220, so the pivot is kept.
        float x = (s_map[219] + s_map[220]) * 0.5f;
        Assert.Equal(220, BlockwiseQuantizer.NearestCode(s_map, x));
        Assert.Equal(219, BlockwiseQuantizer.NearestCode(s_map, MathF.BitDecrement(x)));
    }

    [Fact]
    public void ZeroBlock_DequantisesToZero()
    {
        var codes = new byte[3];
        var absmax = new float[1];
        BlockwiseQuantizer.Quantize(new float[3], 3, s_map, codes, absmax);
        Assert.Equal(0f, absmax[0]);
        var restored = new float[3];
        BlockwiseQuantizer.Dequantize(codes, absmax, 3, s_map, restored);
        Assert.All(restored, v => Assert.Equal(0f, Math.Abs(v)));
    }

    [Fact]
    public void BadArguments_GiveOneLineMessages()
    {
        var e = Assert.Throws<ArgumentException>(() => BlockwiseQuantizer.Quantize(new float[4], 4, new float[16], new byte[4], new float[1]));
        Assert.Contains("256", e.Message);
        Assert.Throws<ArgumentException>(() => BlockwiseQuantizer.Quantize(new float[5], 4, s_map, new byte[5], new float[1]));
        Assert.Throws<ArgumentException>(() => BlockwiseQuantizer.Quantize(new float[5], 4, s_map, new byte[4], new float[2]));
    }
}
