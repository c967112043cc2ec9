using SharpTune.Hparams;
using SharpTune.Training.Schedules;

namespace SharpTune.Tests.Trainer;

/// <summary>
/// The schedules against transformers' optimization.py lambdas, written out here step by step: the lr of optimizer
/// step s is learning_rate × lambda(s).
/// </summary>
public class LrScheduleTests
{
    private const double Lr = 2e-4;

    private static TrainingArguments Args(string type, int warmupSteps = 0, double warmupRatio = 0, Dictionary<string, double>? kwargs = null) => new()
    {
        LrSchedulerType = type,
        LearningRate = Lr,
        WarmupSteps = warmupSteps,
        WarmupRatio = warmupRatio,
        LrSchedulerKwargs = kwargs ?? [],
    };

    private static void AssertSchedule(LrSchedule schedule, int steps, Func<int, double> lambda)
    {
        for (int s = 0; s <= steps + 2; s++)
            Assert.Equal(Lr * lambda(s), schedule.LearningRate(s), 1e-17);
    }

    [Fact]
    public void Linear_WarmsUpThenDecaysToZero()
    {
        var schedule = LrSchedule.Create(Args("linear", warmupSteps: 3), 10);
        AssertSchedule(schedule, 10, s => s < 3 ? s / 3.0 : Math.Max(0.0, (10.0 - s) / 7.0));
        Assert.Equal(0, schedule.LearningRate(0));
        Assert.Equal(Lr / 3, schedule.LearningRate(1), 1e-17);
        Assert.Equal(Lr, schedule.LearningRate(3), 1e-17);
        Assert.Equal(Lr * 5 / 7, schedule.LearningRate(5), 1e-17);
        Assert.Equal(0, schedule.LearningRate(10));
        Assert.Equal(0, schedule.LearningRate(12));
    }

    [Fact]
    public void Cosine_HalfCycleByDefault_AndNumCyclesKwarg()
    {
        var schedule = LrSchedule.Create(Args("cosine", warmupSteps: 2), 12);
        AssertSchedule(schedule, 12, s => s < 2 ? s / 2.0 : Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * 0.5 * 2 * (s - 2) / 10.0))));
        Assert.Equal(Lr / 2, schedule.LearningRate(7), 1e-17);
        Assert.Equal(0, schedule.LearningRate(12), 1e-17);

        var twoCycles = LrSchedule.Create(Args("cosine", kwargs: new() { ["num_cycles"] = 1.0 }), 8);
        AssertSchedule(twoCycles, 8, s => Math.Max(0.0, 0.5 * (1 + Math.Cos(Math.PI * 1.0 * 2 * s / 8.0))));
        Assert.Equal(Lr, twoCycles.LearningRate(8), 1e-17);
    }

    [Fact]
    public void Constant_IgnoresWarmup()
    {
        var schedule = LrSchedule.Create(Args("constant", warmupSteps: 5), 10);
        AssertSchedule(schedule, 10, _ => 1.0);
        Assert.Equal(0, schedule.WarmupSteps);
    }

    [Fact]
    public void ConstantWithWarmup()
    {
        var schedule = LrSchedule.Create(Args("constant_with_warmup", warmupSteps: 4), 10);
        AssertSchedule(schedule, 10, s => s < 4 ? s / 4.0 : 1.0);
        Assert.Equal(Lr * 0.75, schedule.LearningRate(3), 1e-17);
    }

    [Fact]
    public void CosineWithMinLr_FromMinLrOrRate()
    {
        var byRate = LrSchedule.Create(Args("cosine_with_min_lr", warmupSteps: 2, kwargs: new() { ["min_lr_rate"] = 0.1 }), 10);
        Func<int, double> lambda = s =>
        {
            if (s < 2) return s / 2.0;
            double factor = 0.5 * (1 + Math.Cos(Math.PI * 0.5 * 2 * (s - 2) / 8.0));
            return Math.Max(0, factor * (1 - 0.1) + 0.1);
        };
        AssertSchedule(byRate, 10, lambda);
        Assert.Equal(Lr * 0.1, byRate.LearningRate(10), 1e-17);

        var byMinLr = LrSchedule.Create(Args("cosine_with_min_lr", warmupSteps: 2, kwargs: new() { ["min_lr"] = Lr * 0.1 }), 10);
        for (int s = 0; s <= 10; s++) Assert.Equal(byRate.LearningRate(s), byMinLr.LearningRate(s), 1e-17);
    }

    [Theory]
    [InlineData(0.1, 25, 3)]
    [InlineData(0.1, 30, 3)]
    [InlineData(0.03, 100, 3)]
    [InlineData(0.5, 7, 4)]
    [InlineData(0.0, 50, 0)]
    public void WarmupRatio_IsCeilOfRatioTimesTotal(double ratio, int total, int expected)
    {
        Assert.Equal(expected, LrSchedule.WarmupStepsFor(Args("linear", warmupRatio: ratio), total));
        Assert.Equal(expected, LrSchedule.Create(Args("linear", warmupRatio: ratio), total).WarmupSteps);
    }

    [Fact]
    public void WarmupSteps_OverrideRatio()
    {
        Assert.Equal(7, LrSchedule.WarmupStepsFor(Args("linear", warmupSteps: 7, warmupRatio: 0.5), 100));
    }

    [Theory]
    [InlineData("polynomial", null, "lr_scheduler_type 'polynomial' is not supported")]
    [InlineData("cosine_with_min_lr", null, "needs min_lr or min_lr_rate")]
    [InlineData("cosine_with_min_lr", "both", "only one of min_lr or min_lr_rate")]
    [InlineData("linear", "num_cycles", "'num_cycles' is not an argument of the linear schedule")]
    public void BadConfiguration_IsAOneLineError(string type, string? kwargs, string message)
    {
        var dict = kwargs switch
        {
            "both" => new Dictionary<string, double> { ["min_lr"] = 1e-5, ["min_lr_rate"] = 0.1 },
            "num_cycles" => new Dictionary<string, double> { ["num_cycles"] = 1 },
            _ => [],
        };
        var e = Assert.Throws<ArgumentException>(() => LrSchedule.Create(Args(type, kwargs: dict), 10));
        Assert.Contains(message, e.Message);
    }
}
