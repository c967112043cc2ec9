using SharpTune.Hparams;
using SharpTune.Training.Trainer;

namespace SharpTune.Tests.Trainer;

public class TrainingPlanTests
{
    private static TrainingPlan Plan(int examples, int batch, int accumulation, double epochs = 3, int maxSteps = -1) =>
        TrainingPlan.Create(new TrainingArguments
        {
            PerDeviceTrainBatchSize = batch,
            GradientAccumulationSteps = accumulation,
            NumTrainEpochs = epochs,
            MaxSteps = maxSteps,
        }, examples);

    [Fact]
    public void Epochs_CountFloorOfBatchesOverAccumulation()
    {
        // 100 examples in batches of 8 → 13 batches (the last has 4); 13 // 4 = 3 updates per epoch.
        var plan = Plan(100, 8, 4);
        Assert.Equal(13, plan.BatchesPerEpoch);
        Assert.Equal(3, plan.UpdateStepsPerEpoch);
        Assert.Equal(9, plan.MaxSteps);
        Assert.Equal(3, plan.EpochsToRun);
        Assert.Equal(300, plan.NumTrainSamples);
    }

    /// <summary>
    /// transformers 4.40 under DDP: len(DistributedSampler) = ceil(101 / 2) = 51 examples per process, ceil(51 / 8) = 7
    /// batches, 7 // 2 = 3 updates per epoch; num_train_samples = max_steps × total_train_batch_size (8 × 2 × 2).
    /// </summary>
    [Fact]
    public void SeveralProcesses_EachRunsItsPaddedShard()
    {
        var args = new TrainingArguments { PerDeviceTrainBatchSize = 8, GradientAccumulationSteps = 2, NumTrainEpochs = 3 };
        var plan = TrainingPlan.Create(args, 101, worldSize: 2);
        Assert.Equal(51, plan.ExamplesPerProcess);
        Assert.Equal(7, plan.BatchesPerEpoch);
        Assert.Equal(3, plan.UpdateStepsPerEpoch);
        Assert.Equal(9, plan.MaxSteps);
        Assert.Equal(303, plan.NumTrainSamples);

        args.MaxSteps = 5;
        Assert.Equal(5 * 8 * 2 * 2, TrainingPlan.Create(args, 101, worldSize: 2).NumTrainSamples);
    }

    [Fact]
    public void FractionalEpochs_CeilTheStepsAndTheEpochLoop()
    {
        var plan = Plan(10, 1, 1, epochs: 1.5);
        Assert.Equal(15, plan.MaxSteps);
        Assert.Equal(2, plan.EpochsToRun);
        Assert.Equal(15, plan.NumTrainSamples);

        var accumulated = Plan(10, 1, 4, epochs: 2.5);
        Assert.Equal(2, accumulated.UpdateStepsPerEpoch);
        Assert.Equal(5, accumulated.MaxSteps);
        Assert.Equal(3, accumulated.EpochsToRun);
    }

    [Fact]
    public void AccumulationLargerThanAnEpoch_StillOneUpdatePerEpoch()
    {
        var plan = Plan(3, 1, 8, epochs: 2);
        Assert.Equal(3, plan.BatchesPerEpoch);
        Assert.Equal(1, plan.UpdateStepsPerEpoch);
        Assert.Equal(2, plan.MaxSteps);
        // Each short epoch steps at its last batch.
        Assert.True(plan.EndsOptimizerStep(3, 2));
        Assert.False(plan.EndsOptimizerStep(2, 1));
    }

    [Fact]
    public void MaxSteps_OverridesEpochs()
    {
        var plan = Plan(100, 8, 4, epochs: 3, maxSteps: 7);
        Assert.Equal(7, plan.MaxSteps);
        Assert.Equal(3, plan.EpochsToRun); // 7 // 3 + 1
        Assert.Equal(7 * 8 * 4, plan.NumTrainSamples);
        Assert.Equal(2, Plan(100, 8, 4, maxSteps: 6).EpochsToRun);
    }

    [Fact]
    public void MicroBatches_GroupAcrossEpochBoundaries()
    {
        // 10 batches per epoch, GA 4: steps end at micro-batches 4, 8, 12 (epoch 1, batch 1), 16, 20 (epoch 1's last).
        var plan = Plan(10, 1, 4);
        var ends = new List<(int Epoch, int Batch)>();
        long seen = 0;
        for (int epoch = 0; epoch < 2; epoch++)
            for (int b = 0; b < 10; b++)
                if (plan.EndsOptimizerStep(++seen, b)) ends.Add((epoch, b));
        Assert.Equal([(0, 3), (0, 7), (1, 1), (1, 5), (1, 9)], ends);
    }

    [Theory]
    [InlineData(0, 8, 1, "the training set is empty")]
    [InlineData(10, 0, 1, "per_device_train_batch_size must be positive")]
    [InlineData(10, 8, 0, "gradient_accumulation_steps must be positive")]
    public void BadArguments_AreOneLineErrors(int examples, int batch, int accumulation, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => Plan(examples, batch, accumulation));
        Assert.Contains(message, e.Message);
    }
}
