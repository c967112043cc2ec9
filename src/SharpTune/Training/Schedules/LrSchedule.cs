using SharpTune.Hparams;

namespace SharpTune.Training.Schedules;

/// <summary>
/// A learning-rate schedule as transformers' <c>get_scheduler</c> builds it: a LambdaLR whose factor multiplies the
/// base learning rate. <see cref="LearningRate"/> is the rate used by optimizer step <c>step</c> (0-based), which is
/// also what the scheduler reports after <c>step</c> optimizer steps have been taken.
/// </summary>
public sealed class LrSchedule
{
    public static readonly IReadOnlyList<string> SupportedTypes =
        ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr"];

    private readonly Func<int, double> _factor;

    public string Type { get; }
    public double BaseLearningRate { get; }
    public int TotalSteps { get; }
    public int WarmupSteps { get; }

    private LrSchedule(string type, double baseLearningRate, int totalSteps, int warmupSteps, Func<int, double> factor)
    {
        Type = type;
        BaseLearningRate = baseLearningRate;
        TotalSteps = totalSteps;
        WarmupSteps = warmupSteps;
        _factor = factor;
    }

    /// <summary>The learning rate of optimizer step <paramref name="step"/> (0-based).</summary>
    public double LearningRate(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return BaseLearningRate * _factor(step);
    }

    /// <summary>TrainingArguments.get_warmup_steps: warmup_steps when positive, else ceil(total × warmup_ratio).</summary>
    public static int WarmupStepsFor(TrainingArguments args, int totalSteps)
    {
        if (args.WarmupSteps < 0) throw new ArgumentException($"warmup_steps must not be negative, got {args.WarmupSteps}");
        if (args.WarmupRatio is < 0 or > 1) throw new ArgumentException($"warmup_ratio must lie in [0, 1], got {args.WarmupRatio}");
        return args.WarmupSteps > 0 ? args.WarmupSteps : (int)Math.Ceiling(totalSteps * args.WarmupRatio);
    }

    public static LrSchedule Create(TrainingArguments args, int totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        string type = args.LrSchedulerType;
        int warmup = WarmupStepsFor(args, totalSteps);
        var kwargs = args.LrSchedulerKwargs;
        switch (type)
        {
            case "constant":
                // get_scheduler builds the constant schedule without passing the warmup.
                RequireKwargs(type, kwargs);
                return new LrSchedule(type, args.LearningRate, totalSteps, 0, _ => 1.0);
            case "constant_with_warmup":
                RequireKwargs(type, kwargs);
                return new LrSchedule(type, args.LearningRate, totalSteps, warmup,
                    step => step < warmup ? (double)step / Math.Max(1.0, warmup) : 1.0);
            case "linear":
                RequireKwargs(type, kwargs);
                return new LrSchedule(type, args.LearningRate, totalSteps, warmup, step => step < warmup
                    ? WarmupFactor(step, warmup)
                    : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmup)));
            case "cosine":
            {
                RequireKwargs(type, kwargs, "num_cycles");
                double cycles = kwargs.GetValueOrDefault("num_cycles", 0.5);
                return new LrSchedule(type, args.LearningRate, totalSteps, warmup, step => step < warmup
                    ? WarmupFactor(step, warmup)
                    : Math.Max(0.0, CosineFactor(step, warmup, totalSteps, cycles)));
            }
            case "cosine_with_min_lr":
            {
                RequireKwargs(type, kwargs, "num_cycles", "min_lr", "min_lr_rate");
                double cycles = kwargs.GetValueOrDefault("num_cycles", 0.5);
                double minLrRate = MinLrRate(kwargs, args.LearningRate);
                return new LrSchedule(type, args.LearningRate, totalSteps, warmup, step => step < warmup
                    ? WarmupFactor(step, warmup)
                    : Math.Max(0.0, CosineFactor(step, warmup, totalSteps, cycles) * (1 - minLrRate) + minLrRate));
            }
            default:
                throw new ArgumentException($"lr_scheduler_type '{type}' is not supported (use one of: {string.Join(", ", SupportedTypes)})");
        }
    }

    private static double WarmupFactor(int step, int warmup) => (double)step / Math.Max(1, warmup);

    private static double CosineFactor(int step, int warmup, int totalSteps, double cycles)
    {
        double progress = (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        return 0.5 * (1.0 + Math.Cos(Math.PI * cycles * 2.0 * progress));
    }

    private static double MinLrRate(Dictionary<string, double> kwargs, double learningRate)
    {
        bool hasMinLr = kwargs.TryGetValue("min_lr", out double minLr);
        bool hasRate = kwargs.TryGetValue("min_lr_rate", out double rate);
        if (hasMinLr && hasRate) throw new ArgumentException("lr_scheduler_kwargs: set only one of min_lr or min_lr_rate for cosine_with_min_lr");
        if (hasMinLr) return minLr / learningRate;
        if (hasRate) return rate;
        throw new ArgumentException("lr_scheduler_kwargs: cosine_with_min_lr needs min_lr or min_lr_rate");
    }

    private static void RequireKwargs(string type, Dictionary<string, double> kwargs, params string[] accepted)
    {
        foreach (string key in kwargs.Keys)
            if (Array.IndexOf(accepted, key) < 0)
                throw new ArgumentException(accepted.Length == 0
                    ? $"lr_scheduler_kwargs: '{key}' is not an argument of the {type} schedule (it takes none)"
                    : $"lr_scheduler_kwargs: '{key}' is not an argument of the {type} schedule (it takes {string.Join(", ", accepted)})");
    }
}
