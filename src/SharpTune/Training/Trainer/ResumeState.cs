namespace SharpTune.Training.Trainer;

/// <summary>
/// Everything besides weights, optimizer moments and trainer_state.json that a resumed run needs to continue exactly
/// where the saved one stood: scheduler step (= global step), both generators, the data position, and the loss and
/// token sums that the next log line and the final train_loss are computed from. Doubles are stored by their
/// bit patterns so they come back exactly (NaN included).
/// </summary>
internal sealed class ResumeState
{
    public const string FileName = "resume_state.json";

    public required int GlobalStep { get; init; }
    /// <summary>0-based epoch the data position is in.</summary>
    public required int Epoch { get; init; }
    /// <summary>The next batch of <see cref="Epoch"/> to run; equal to the batch count when the epoch's batches are done.</summary>
    public required int NextBatch { get; init; }
    /// <summary>Whether the end-of-epoch evaluation and save of <see cref="Epoch"/> already ran.</summary>
    public required bool EpochEndHandled { get; init; }
    public required long MicroBatchesSeen { get; init; }
    /// <summary>
    /// Whether micro-batches of an unfinished optimizer step have added to the gradients (an end-of-epoch save
    /// while GA groups straddle epochs); their sums are then saved with the checkpoint.
    /// </summary>
    public required bool HasAccumulatedGradients { get; init; }
    /// <summary>Σ mean/GA of the unfinished optimizer step's micro-batches.</summary>
    public required double StepLoss { get; init; }
    /// <summary>The shuffled example order of <see cref="Epoch"/>.</summary>
    public required int[] Order { get; init; }
    public required ulong[] DropoutRandom { get; init; }
    public required ulong[] DataOrderRandom { get; init; }
    /// <summary>Σ micro-batch loss / GA since the last log (transformers' tr_loss).</summary>
    public required double PendingLoss { get; init; }
    /// <summary>The step's metrics stored since the last log, key by key in the order they came.</summary>
    public required IReadOnlyList<KeyValuePair<string, double>> StoredMetrics { get; init; }
    public required int LastLoggedStep { get; init; }
    /// <summary>Σ of the logged loss sums (transformers' _total_loss_scalar).</summary>
    public required double TotalLoss { get; init; }
    public required long TokensSeen { get; init; }
    public required string SchedulerType { get; init; }
    public required int SchedulerTotalSteps { get; init; }
    public required int SchedulerWarmupSteps { get; init; }
    public required int TrainExamples { get; init; }
    public required int BatchSize { get; init; }
    public required int GradientAccumulationSteps { get; init; }
    /// <summary>The processes of the data-parallel run (1 without mpirun; checkpoints from before it have none).</summary>
    public int WorldSize { get; init; } = 1;
    /// <summary>
    /// With several processes, each one's dropout generator by rank (<see cref="DropoutRandom"/> is rank 0's): they
    /// drew for different batches.
    /// </summary>
    public IReadOnlyList<ulong[]> DropoutRandomByRank { get; init; } = [];

    public string ToJson() => PythonJson.Dumps(new List<KeyValuePair<string, object?>>
    {
        new("global_step", GlobalStep),
        new("epoch", Epoch),
        new("next_batch", NextBatch),
        new("epoch_end_handled", EpochEndHandled),
        new("micro_batches_seen", MicroBatchesSeen),
        new("has_accumulated_gradients", HasAccumulatedGradients),
        new("step_loss_bits", BitConverter.DoubleToInt64Bits(StepLoss)),
        new("dropout_rng_state", DropoutRandom.Cast<object?>().ToList()),
        new("data_order_rng_state", DataOrderRandom.Cast<object?>().ToList()),
        new("pending_loss_bits", BitConverter.DoubleToInt64Bits(PendingLoss)),
        new("stored_metrics", StoredMetrics.Select(kv => (object?)new List<object?> { kv.Key, BitConverter.DoubleToInt64Bits(kv.Value) }).ToList()),
        new("last_logged_step", LastLoggedStep),
        new("total_loss_bits", BitConverter.DoubleToInt64Bits(TotalLoss)),
        new("tokens_seen", TokensSeen),
        new("scheduler_type", SchedulerType),
        new("scheduler_total_steps", SchedulerTotalSteps),
        new("scheduler_warmup_steps", SchedulerWarmupSteps),
        new("train_examples", TrainExamples),
        new("per_device_train_batch_size", BatchSize),
        new("gradient_accumulation_steps", GradientAccumulationSteps),
        new("world_size", WorldSize),
        new("dropout_rng_state_by_rank", DropoutRandomByRank.Select(words => (object?)words.Cast<object?>().ToList()).ToList()),
        new("order", Order.Cast<object?>().ToList()),
    }, indent: 2) + "\n";

    public static ResumeState Load(string path)
    {
        var fields = PythonJson.Parse(File.ReadAllText(path)) as List<KeyValuePair<string, object?>>
            ?? throw new InvalidDataException($"{path}: expected a JSON object");
        var map = fields.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

        object? Field(string key) => map.TryGetValue(key, out object? v) ? v : throw new InvalidDataException($"{path}: '{key}' is missing");
        long Long(string key) => Field(key) is long l ? l : throw new InvalidDataException($"{path}: '{key}' is not an integer");
        int Int(string key) => checked((int)Long(key));
        bool Bool(string key) => Field(key) as bool? ?? throw new InvalidDataException($"{path}: '{key}' is not a boolean");
        List<object?> List(string key) => Field(key) as List<object?> ?? throw new InvalidDataException($"{path}: '{key}' is not a list");
        ulong[] WordsOf(string key, List<object?> values) => values.Select(v => v switch
        {
            long l => unchecked((ulong)l),
            ulong u => u,
            _ => throw new InvalidDataException($"{path}: '{key}' holds a non-integer"),
        }).ToArray();
        ulong[] Words(string key) => WordsOf(key, List(key));

        return new ResumeState
        {
            GlobalStep = Int("global_step"),
            Epoch = Int("epoch"),
            NextBatch = Int("next_batch"),
            EpochEndHandled = Bool("epoch_end_handled"),
            MicroBatchesSeen = Long("micro_batches_seen"),
            HasAccumulatedGradients = Bool("has_accumulated_gradients"),
            StepLoss = BitConverter.Int64BitsToDouble(Long("step_loss_bits")),
            Order = List("order").Select(v => v is long l ? checked((int)l) : throw new InvalidDataException($"{path}: 'order' holds a non-integer")).ToArray(),
            DropoutRandom = Words("dropout_rng_state"),
            DataOrderRandom = Words("data_order_rng_state"),
            PendingLoss = BitConverter.Int64BitsToDouble(Long("pending_loss_bits")),
            // Checkpoints from before the stage metrics have none stored.
            StoredMetrics = map.ContainsKey("stored_metrics")
                ? List("stored_metrics").Select(v => v is List<object?> { Count: 2 } pair && pair[0] is string key && pair[1] is long bits
                    ? new KeyValuePair<string, double>(key, BitConverter.Int64BitsToDouble(bits))
                    : throw new InvalidDataException($"{path}: 'stored_metrics' holds something other than [name, bits] pairs")).ToList()
                : [],
            LastLoggedStep = Int("last_logged_step"),
            TotalLoss = BitConverter.Int64BitsToDouble(Long("total_loss_bits")),
            TokensSeen = Long("tokens_seen"),
            SchedulerType = Field("scheduler_type") as string ?? throw new InvalidDataException($"{path}: 'scheduler_type' is not a string"),
            SchedulerTotalSteps = Int("scheduler_total_steps"),
            SchedulerWarmupSteps = Int("scheduler_warmup_steps"),
            TrainExamples = Int("train_examples"),
            BatchSize = Int("per_device_train_batch_size"),
            GradientAccumulationSteps = Int("gradient_accumulation_steps"),
            // Checkpoints from before data-parallel training were written by one process.
            WorldSize = map.ContainsKey("world_size") ? Int("world_size") : 1,
            DropoutRandomByRank = map.ContainsKey("dropout_rng_state_by_rank")
                ? List("dropout_rng_state_by_rank").Select(v => WordsOf("dropout_rng_state_by_rank",
                    v as List<object?> ?? throw new InvalidDataException($"{path}: 'dropout_rng_state_by_rank' holds something other than lists"))).ToList()
                : [],
        };
    }
}
