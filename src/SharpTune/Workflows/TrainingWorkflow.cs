using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.Training.Trainer;

namespace SharpTune.Workflows;

/// <summary>What a training-stage run is asked to do: the parsed config and the memory pre-flight's override.</summary>
/// <param name="SkipMemoryCheck">Train even when the memory estimate says the run will not fit.</param>
public sealed record TrainingRequest(SftConfig Config, bool SkipMemoryCheck = false);

/// <summary>How a training-stage run ended.</summary>
/// <param name="Task">"train", "eval" or "predict".</param>
/// <param name="Metrics">What the run reports (train/eval/predict metrics); empty when training was interrupted.</param>
/// <param name="Training">The training loop's result when the run trained, else null.</param>
public sealed record WorkflowResult(string Task, IReadOnlyList<KeyValuePair<string, object?>> Metrics, TrainResult? Training = null)
{
    public bool Interrupted => Training?.Interrupted == true;
}

/// <summary>One value of LLaMA-Factory's <c>stage</c>: the whole run of a config with that stage (train, eval or predict).</summary>
public interface ITrainingStage
{
    WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer);
}

/// <summary>
/// `sharptune train` as a library call, dispatched on LLaMA-Factory's <c>stage</c> key as its <c>run_exp</c> does:
/// each of its stages (sft, pt, rm, dpo, kto, ppo) has its <see cref="ITrainingStage"/> here.
/// </summary>
public static class TrainingWorkflow
{
    public static IReadOnlyDictionary<string, ITrainingStage> Stages { get; } = new Dictionary<string, ITrainingStage>
    {
        ["sft"] = FineTuningStage.Supervised,
        ["pt"] = FineTuningStage.Pretraining,
        ["rm"] = RewardModelStage.Instance,
        ["dpo"] = PreferenceStages.Dpo,
        ["kto"] = PreferenceStages.Kto,
        ["ppo"] = PpoStage.Instance,
    };

    /// <summary>
    /// Runs the config's stage, reporting to <paramref name="observer"/>. Cancelling <paramref name="cancellation"/>
    /// while training finishes the step in progress, saves a checkpoint and returns an interrupted result.
    /// </summary>
    public static WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer)
    {
        string stage = request.Config.Finetuning.Stage;
        string task = request.Config.Training.DoPredict ? "predict" : request.Config.Training.DoTrain ? "train" : "eval";
        return Workflow.Observed(task, observer, () =>
            (Stages.TryGetValue(stage, out var run) ? run : throw new ArgumentException($"stage {stage} has no workflow"))
            .Run(request, cancellation, observer));
    }
}
