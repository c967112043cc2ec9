using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

public class DynamicMapTests
{
    [Fact]
    public void SignedMap_IsSortedSymmetricAndSpansMinusOneToOne()
    {
        float[] map = DynamicMap.Signed();
        Assert.Equal(256, map.Length);
        for (int i = 1; i < map.Length; i++)
            Assert.True(map[i - 1] < map[i], $"map[{i - 1}] = {map[i - 1]} is not below map[{i}] = {map[i]}");
        Assert.Equal(0f, map[127]);
        Assert.Equal(1f, map[255]);
        // 127 negative values mirror the 127 positive ones below 1.
        for (int i = 0; i < 127; i++)
            Assert.Equal(-map[254 - i], map[i]);
    }

    [Fact]
    public void SignedMap_HandCheckedEntries()
    {
        float[] map = DynamicMap.Signed();
        // Decade 10^0 (i = 6): 65 boundaries linspace(0.1, 1), step 0.9/64; its 64 means fill indices 191..254.
        float step = (1f - 0.1f) / 64;
        float lastBoundaryBelowOne = 1f - step * 1;
        Assert.Equal((lastBoundaryBelowOne + 1f) / 2f, map[254]);
        Assert.Equal(0.992968738079071f, map[254]);
        Assert.Equal(-0.992968738079071f, map[0]);
        Assert.Equal((0.1f + (0.1f + step)) / 2f, map[191]);
        Assert.Equal(0.10703125596046448f, map[191]);
        // Decade 10^-6 (i = 0): boundaries {0.1, 1}, one float32 mean 0.55000001, times float32(1e-6) in float32
        // (5.5000004e-7; a float64 evaluation of the same formula would give 5.4999998e-7).
        Assert.Equal(1e-6f * ((0.1f + 1f) / 2f), map[128]);
        Assert.Equal(5.500000384017767e-07f, map[128]);
        Assert.Equal(-map[128], map[126]);
        // Decade 10^-1 (i = 5): 33 boundaries; its largest mean is the value just below decade 10^0.
        float step33 = (1f - 0.1f) / 32;
        Assert.Equal(0.1f * (((1f - step33 * 1) + 1f) / 2f), map[190]);
        // Decade 10^-3 (i = 3): 9 boundaries, 8 means ending at index 142; decade 10^-2 starts at 143.
        float step9 = (1f - 0.1f) / 8;
        Assert.Equal(0.001f * (((1f - step9 * 1) + 1f) / 2f), map[142]);
        float step17 = (1f - 0.1f) / 16;
        Assert.Equal(0.01f * ((0.1f + (0.1f + step17 * 1)) / 2f), map[143]);
    }

    [Fact]
    public void UnsignedMap_HandCheckedEntries()
    {
        float[] map = DynamicMap.Unsigned();
        Assert.Equal(256, map.Length);
        for (int i = 1; i < map.Length; i++)
            Assert.True(map[i - 1] < map[i]);
        Assert.Equal(0f, map[0]);
        Assert.Equal(1f, map[255]);
        // Unsigned decade 10^-6 has 3 boundaries {0.1, 0.55, 1}: means 0.325 and 0.775.
        float middle = 0.1f + (1f - 0.1f) / 2 * 1;
        Assert.Equal(1e-6f * ((0.1f + middle) / 2f), map[1]);
        Assert.Equal(1e-6f * ((middle + 1f) / 2f), map[2]);
        // Unsigned decade 10^0 has 129 boundaries; the largest mean is 1 − step/2 with step 0.9/128.
        float step = (1f - 0.1f) / 128;
        Assert.Equal(((1f - step) + 1f) / 2f, map[254]);
        Assert.Equal(0.996484375f, map[254], 6);
    }

    [Fact]
    public void Linspace_FollowsTorchCpuHalves()
    {
        float[] values = DynamicMap.LinspaceFloat32(0.1f, 1f, 5);
        float step = 0.9f / 4;
        Assert.Equal([0.1f, 0.1f + step, 1f - step * 2, 1f - step, 1f], values);
    }

    [Fact]
    public void Maps_AreFreshCopies()
    {
        float[] first = DynamicMap.Signed();
        first[0] = 42f;
        Assert.NotEqual(42f, DynamicMap.Signed()[0]);
    }
}
