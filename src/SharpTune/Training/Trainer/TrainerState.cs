namespace SharpTune.Training.Trainer;

/// <summary>
/// transformers' TrainerState as <c>trainer_state.json</c> holds it (<c>json.dumps(asdict(state), indent=2,
/// sort_keys=True)</c> + newline). total_flos and num_input_tokens_seen are left out: SharpTune does not count
/// flops, and transformers reads the file with their defaults when they are missing.
/// </summary>
public sealed class TrainerState
{
    public const string FileName = "trainer_state.json";

    public int GlobalStep { get; set; }
    /// <summary>Fractional epoch: epoch index + batches done in it / batches per epoch.</summary>
    public double Epoch { get; set; }
    public int MaxSteps { get; set; }
    public int NumTrainEpochs { get; set; }
    public int LoggingSteps { get; set; }
    public int EvalSteps { get; set; }
    public int SaveSteps { get; set; }
    public int TrainBatchSize { get; set; }
    public List<LogEntry> LogHistory { get; } = [];

    /// <summary>A copy that later changes to this state do not reach (what a <see cref="FinalStateReported"/> carries).</summary>
    public TrainerState Snapshot()
    {
        var copy = new TrainerState
        {
            GlobalStep = GlobalStep,
            Epoch = Epoch,
            MaxSteps = MaxSteps,
            NumTrainEpochs = NumTrainEpochs,
            LoggingSteps = LoggingSteps,
            EvalSteps = EvalSteps,
            SaveSteps = SaveSteps,
            TrainBatchSize = TrainBatchSize,
        };
        copy.LogHistory.AddRange(LogHistory);
        return copy;
    }

    public string ToJson()
    {
        var fields = new List<KeyValuePair<string, object?>>
        {
            new("best_metric", null),
            new("best_model_checkpoint", null),
            new("epoch", Epoch),
            new("eval_steps", EvalSteps),
            new("global_step", GlobalStep),
            new("is_hyper_param_search", false),
            new("is_local_process_zero", true),
            new("is_world_process_zero", true),
            new("log_history", LogHistory.Select(e => e.Values).ToList()),
            new("logging_steps", LoggingSteps),
            new("max_steps", MaxSteps),
            new("num_train_epochs", NumTrainEpochs),
            new("save_steps", SaveSteps),
            new("train_batch_size", TrainBatchSize),
            new("trial_name", null),
            new("trial_params", null),
        };
        return PythonJson.Dumps(fields, indent: 2, sortKeys: true) + "\n";
    }

    /// <summary>Reads the fields a resumed run continues from: global_step, epoch, log_history.</summary>
    public static TrainerState Load(string path)
    {
        object? parsed;
        try
        {
            parsed = PythonJson.Parse(File.ReadAllText(path));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
        if (parsed is not List<KeyValuePair<string, object?>> fields)
            throw new InvalidDataException($"{path}: expected a JSON object");
        var state = new TrainerState();
        foreach (var (key, value) in fields)
        {
            switch (key)
            {
                case "global_step": state.GlobalStep = (int)AsNumber(path, key, value); break;
                case "epoch": state.Epoch = value is null ? 0 : AsNumber(path, key, value); break;
                case "log_history":
                    if (value is not List<object?> entries) throw new InvalidDataException($"{path}: log_history is not a list");
                    foreach (var entry in entries)
                        state.LogHistory.Add(new LogEntry(entry as List<KeyValuePair<string, object?>>
                            ?? throw new InvalidDataException($"{path}: a log_history entry is not an object")));
                    break;
            }
        }
        return state;
    }

    private static double AsNumber(string path, string key, object? value) => value switch
    {
        long l => l,
        double d => d,
        _ => throw new InvalidDataException($"{path}: '{key}' is not a number"),
    };
}
