using SharpTune.Training.Trainer;

namespace SharpTune.Training;

/// <summary>
/// Receives a run's typed events in the order they happen (on the thread that runs the work). The terminal display,
/// trainer_log.jsonl and any other front end (a web board, a test's recorder) are observers; the run never formats
/// text for one of them.
/// </summary>
public interface IRunObserver
{
    void On(RunEvent e);
}

/// <summary>Observers composed: each event goes to every one of them, in the order given.</summary>
public sealed class RunObservers(params IRunObserver[] observers) : IRunObserver
{
    /// <summary>Observes nothing.</summary>
    public static IRunObserver None { get; } = new RunObservers();

    public void On(RunEvent e)
    {
        foreach (var observer in observers) observer.On(e);
    }
}

/// <summary>Something that happened in a run (training, evaluation, prediction, comparison, export).</summary>
public abstract record RunEvent;

/// <summary>What a run will do, as known when it starts.</summary>
/// <param name="Task">"train", "eval", "predict", "compare" or "export".</param>
/// <param name="Stage">The training stage (LLaMA-Factory's <c>stage</c>: sft, pt), or null for a run that does not train.</param>
/// <param name="Examples">The examples (or questions) it works through.</param>
/// <param name="Training">The step arithmetic of a training run, else null.</param>
/// <param name="BatchSize">Examples per generated or evaluated batch, where that is how the run proceeds.</param>
public sealed record RunPlan(string Task, string? Stage, int Examples, TrainingPlan? Training = null, int? BatchSize = null);

/// <summary>The run has its data and model and starts its work.</summary>
public sealed record RunStarted(RunPlan Plan) : RunEvent;

/// <summary>A line for a person about the run's setup or outcome (a config note, the data report, where a file went).</summary>
public sealed record RunNote(string Text) : RunEvent;

/// <summary>A block of text to show as it is (the memory pre-flight's table when the run will not fit).</summary>
public sealed record RunReport(string Text) : RunEvent;

/// <summary>A line the training loop reports between its steps (resumed, removed a stale checkpoint, interrupted, finished).</summary>
public sealed record TrainerNote(string Text) : RunEvent;

/// <summary>Where training stands after an optimizer step, for the progress display.</summary>
public readonly record struct ProgressSnapshot(
    int Step,
    int MaxSteps,
    double? Loss,
    double LearningRate,
    double? GradNorm,
    double Epoch,
    double TokensPerSecond,
    TimeSpan Elapsed,
    TimeSpan Remaining);

/// <summary>An optimizer step finished (every step; the loss is the step's own, not a logged average).</summary>
public sealed record StepCompleted(ProgressSnapshot Progress) : RunEvent;

/// <summary>A training log (every logging_steps): the logged loss, learning rate, grad norm, tokens/s and time left.</summary>
public sealed record StepLogged(ProgressSnapshot Progress, LogEntry Entry) : RunEvent;

/// <summary>What this process has done since it started (or resumed): its steps, its tokens and its time.</summary>
public readonly record struct RunSegment(int Steps, long Tokens, TimeSpan Elapsed);

/// <summary>
/// transformers' <c>on_log</c> while training: an entry joined log_history (a training log, an evaluation, the closing
/// metrics) — what LLaMA-Factory's LogCallback writes to trainer_log.jsonl.
/// </summary>
/// <param name="TokensSeen">Tokens of the whole run, those before a resume included.</param>
public sealed record HistoryLogged(LogEntry Entry, int GlobalStep, int MaxSteps, long TokensSeen, RunSegment ThisProcess) : RunEvent;

/// <summary>Evaluation has covered <paramref name="Done"/> of <paramref name="Total"/> examples.</summary>
public sealed record EvaluationProgressed(int Done, int Total) : RunEvent;

/// <summary>An evaluation pass finished.</summary>
/// <param name="Step">The global step it evaluated at, or null for an evaluation without training (do_eval alone).</param>
/// <param name="AfterTraining">The final evaluation of do_eval after training (not a periodic one).</param>
public sealed record Evaluated(int? Step, int MaxSteps, EvalResult Result, bool AfterTraining) : RunEvent;

/// <summary>A checkpoint-N folder was saved (and older ones removed by save_total_limit).</summary>
public sealed record CheckpointSaved(string Path, int Step, IReadOnlyList<string> Removed, int? SaveTotalLimit) : RunEvent;

/// <summary>
/// A split's final metrics (transformers' <c>save_metrics</c>: train, eval or predict), which the result files
/// write as output_dir/{split}_results.json and merge into all_results.json.
/// </summary>
public sealed record ResultsReported(string Split, IReadOnlyList<KeyValuePair<string, object?>> Metrics) : RunEvent;

/// <summary>
/// The trainer's state when training finished (transformers' <c>save_state</c>), which the result files write as
/// output_dir/trainer_state.json. A checkpoint's trainer_state.json is part of the checkpoint, not of this event.
/// </summary>
public sealed record FinalStateReported(TrainerState State) : RunEvent;

/// <summary>
/// A loss curve of a finished training run (plot_loss): the logged values of <paramref name="Key"/> ("loss",
/// "eval_loss") by step, which the result files draw as training_{key}.png and .svg.
/// </summary>
public sealed record LossCurveReported(string Key, IReadOnlyList<(int Step, double Value)> Points) : RunEvent;

/// <summary>A training loop ended (finished or interrupted); the display closes its live line.</summary>
public sealed record TrainingEnded(TrainResult Result) : RunEvent;

/// <summary>A generating pass (a prediction run, or one model's answers in a comparison) starts.</summary>
/// <param name="Label">What is generating: "predict", or the model a comparison is answering with.</param>
public sealed record PredictionStarted(string Label, int Total) : RunEvent;

/// <summary>A generated batch finished: <paramref name="Done"/> of <paramref name="Total"/> prompts answered.</summary>
/// <param name="Label">What is generating: "predict", or the model a comparison is answering with.</param>
public sealed record PredictionProgressed(string Label, int Done, int Total, long GeneratedTokens, TimeSpan Elapsed) : RunEvent;

/// <summary>A generating pass ended; the display closes its live line.</summary>
public sealed record PredictionEnded(string Label) : RunEvent;

/// <summary>An export produced (merged or copied) <paramref name="Done"/> of its <paramref name="Total"/> tensors.</summary>
public sealed record ExportProgressed(int Done, int Total) : RunEvent;

/// <summary>The run finished; <paramref name="Results"/> are its metrics (empty for an interrupted training run).</summary>
public sealed record RunFinished(string Task, IReadOnlyList<KeyValuePair<string, object?>> Results, bool Interrupted = false) : RunEvent;

/// <summary>The run failed; nothing half-written is left where a good file was.</summary>
public sealed record RunFailed(string Task, string Message) : RunEvent;
