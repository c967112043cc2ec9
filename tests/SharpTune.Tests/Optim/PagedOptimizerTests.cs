using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

public class PagedOptimizerTests
{
    private const int Seed = 11;

    [Fact]
    public void PagedAdamW32Bit_EqualsAdamWTorch_BitForBit_AndRemovesItsFile()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        var mirror = OptimizerTestData.Clone(parameters);
        using var heap = new AdamW(parameters, OptimizerTestData.Hyperparameters, paged: false);
        var paged = new AdamW(mirror, OptimizerTestData.Hyperparameters, paged: true);
        Assert.Equal(OptimizerNames.PagedAdamW32Bit, paged.Name);
        Assert.Null(heap.StateFilePath);
        string file = paged.StateFilePath!;
        Assert.StartsWith(Path.GetTempPath(), file);
        Assert.True(File.Exists(file));
        Assert.Equal(heap.StateBytes, paged.StateBytes);

        OptimizerTestData.Run(heap, Seed, 0, 4);
        OptimizerTestData.Run(paged, Seed, 0, 4);
        OptimizerTestData.AssertSameWeights(parameters, mirror);
        OptimizerTestData.AssertSameState(heap, paged);

        paged.Dispose();
        Assert.False(File.Exists(file));
        Assert.Throws<ObjectDisposedException>(() => paged.ExpAvg(0).Length);
    }

    [Fact]
    public void PagedAdamW8Bit_EqualsAdamW8Bit_BitForBit_AndRemovesItsFile()
    {
        var parameters = OptimizerTestData.MixedParameters(Seed);
        var mirror = OptimizerTestData.Clone(parameters);
        using var heap = new AdamW8Bit(parameters, OptimizerTestData.Hyperparameters, paged: false);
        var paged = new AdamW8Bit(mirror, OptimizerTestData.Hyperparameters, paged: true);
        Assert.Equal(OptimizerNames.PagedAdamW8Bit, paged.Name);
        string file = paged.StateFilePath!;
        Assert.True(File.Exists(file));
        // Slots are padded to 64 bytes in the file; the state itself is the same size.
        Assert.InRange(new FileInfo(file).Length, paged.StateBytes, paged.StateBytes + 64 * paged.StateTensors.Count);

        OptimizerTestData.Run(heap, Seed, 0, 4);
        OptimizerTestData.Run(paged, Seed, 0, 4);
        OptimizerTestData.AssertSameWeights(parameters, mirror);
        OptimizerTestData.AssertSameState(heap, paged);

        paged.Dispose();
        paged.Dispose();
        Assert.False(File.Exists(file));
    }
}
