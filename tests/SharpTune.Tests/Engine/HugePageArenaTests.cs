using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

/// <summary>The huge-page copies decoding streams: bit-identical to their sources, and bounded by the arena's room.</summary>
public sealed unsafe class HugePageArenaTests
{
    [Fact]
    public void CopiesHoldTheSourcesBitsAndTheArenaRefusesMoreThanItsRoom()
    {
        if (!HugePageArena.IsSupported)
        {
            Assert.Throws<PlatformNotSupportedException>(() => new HugePageArena(1));
            return;
        }
        var random = new Random(2);
        ushort[] bf16 = Enumerable.Range(0, 37 * 70).Select(_ => (ushort)random.Next(0x10000)).ToArray();
        // 3 Mi values, 12 MiB: more than one copy slice.
        float[] fp32 = Enumerable.Range(0, 3 << 20).Select(_ => (float)random.NextDouble()).ToArray();
        fixed (ushort* pb = bf16)
        fixed (float* pf = fp32)
        {
            var small = new WeightMatrix(pb, DType.BF16, 37, 70);
            var large = new WeightMatrix(pf, DType.F32, 1024, fp32.Length / 1024);
            using var arena = new HugePageArena(HugePageArena.SizeOf(small) + HugePageArena.SizeOf(large));

            var smallCopy = arena.CopyIn(small, releaseMappedSource: false);
            var largeCopy = arena.CopyIn(large, releaseMappedSource: false);

            Assert.Equal(0, (long)smallCopy.Data % 64);
            Assert.Equal(0, (long)largeCopy.Data % 64);
            Assert.Equal((DType.BF16, 37, 70), (smallCopy.DType, smallCopy.Rows, smallCopy.Cols));
            Assert.True(new ReadOnlySpan<ushort>(smallCopy.Data, bf16.Length).SequenceEqual(bf16));
            Assert.True(new ReadOnlySpan<float>(largeCopy.Data, fp32.Length).SequenceEqual(fp32));
            var tooMuch = new WeightMatrix(pf, DType.F32, 1024, 1024);
            var e = Assert.Throws<InvalidOperationException>(() => arena.CopyIn(tooMuch, releaseMappedSource: false));
            Assert.Contains("the arena holds", e.Message);
        }
    }

    [Fact]
    public void OnlyACopyThatLeavesHalfTheAvailableMemoryIsAfforded()
    {
        if (!File.Exists("/proc/meminfo"))
        {
            Assert.False(HugePageArena.Affords(1));
            return;
        }
        long available = File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("MemAvailable:")).Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024).Single();

        Assert.True(HugePageArena.Affords(available / 4));
        Assert.False(HugePageArena.Affords(available));
    }
}
