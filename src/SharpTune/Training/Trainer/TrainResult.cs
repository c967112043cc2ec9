namespace SharpTune.Training.Trainer;

/// <summary>A point of a loss curve: the global step it was logged at and the loss.</summary>
public readonly record struct LossPoint(int Step, double Loss);

/// <summary>
/// The training and evaluation losses of a run's log_history (what LLaMA-Factory's plot_loss draws into
/// training_loss.png and training_eval_loss.png), including the entries from before a resume.
/// </summary>
public sealed record LossCurve(IReadOnlyList<LossPoint> Training, IReadOnlyList<LossPoint> Evaluation)
{
    public static LossCurve FromHistory(IEnumerable<LogEntry> history)
    {
        var training = new List<LossPoint>();
        var evaluation = new List<LossPoint>();
        foreach (var entry in history)
        {
            if (entry.TryGetDouble("loss") is { } loss) training.Add(new LossPoint(entry.Step, loss));
            if (entry.TryGetDouble("eval_loss") is { } evalLoss) evaluation.Add(new LossPoint(entry.Step, evalLoss));
        }
        return new LossCurve(training, evaluation);
    }
}

/// <summary>
/// An evaluation pass: transformers' eval_loss and speed metrics, the stage's own eval_ metrics (rewards for dpo, …),
/// and perplexity = exp(eval_loss).
/// </summary>
public sealed record EvalResult(double Loss, double Runtime, double SamplesPerSecond, double StepsPerSecond,
    IReadOnlyList<KeyValuePair<string, object?>>? StepMetrics = null)
{
    public double Perplexity => Math.Exp(Loss);

    /// <summary>The eval_* keys transformers' evaluate() returns.</summary>
    internal List<KeyValuePair<string, object?>> Metrics() =>
    [
        new("eval_loss", Loss),
        new("eval_runtime", Runtime),
        new("eval_samples_per_second", SamplesPerSecond),
        new("eval_steps_per_second", StepsPerSecond),
        .. StepMetrics ?? [],
    ];
}

/// <summary>
/// How <see cref="Trainer{TExample}.Train"/> ended. When <see cref="Interrupted"/>, the run stopped at a cancellation
/// after saving <see cref="CheckpointPath"/>, and the final outputs (model, *_results.json) were not written;
/// otherwise <see cref="Metrics"/> holds train_results.json (plus the final evaluation's metrics when one ran).
/// </summary>
public sealed record TrainResult(
    bool Interrupted,
    int GlobalStep,
    int MaxSteps,
    double Epoch,
    string? CheckpointPath,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyList<LogEntry> LogHistory)
{
    public double? TrainLoss => Metrics.TryGetValue("train_loss", out double loss) ? loss : null;

    /// <summary>The points the loss plot is drawn from.</summary>
    public LossCurve LossCurve => LossCurve.FromHistory(LogHistory);
}
