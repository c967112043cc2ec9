using SharpTune.Hparams;

namespace SharpTune.Training.Trainer;

/// <summary>
/// The step arithmetic of transformers' Trainer (4.40 <c>_inner_training_loop</c>) for one process of
/// <see cref="WorldSize"/>: each process takes its shard of every epoch's examples, ceil(examples / world size) as
/// torch's DistributedSampler pads them; batches per epoch (of the shard) keep the last partial batch
/// (drop_last=False); update steps per epoch = batches // GA, at least 1; max_steps = max_steps when positive, else ceil(num_train_epochs × update steps per epoch); the epoch
/// loop runs ceil(num_train_epochs) times (or as many as max_steps needs) and stops as soon as max_steps is reached.
/// </summary>
public sealed record TrainingPlan(
    int TrainExamples,
    int BatchSize,
    int GradientAccumulationSteps,
    int BatchesPerEpoch,
    int UpdateStepsPerEpoch,
    int MaxSteps,
    int EpochsToRun,
    double NumTrainSamples,
    int WorldSize = 1)
{
    /// <summary>The examples each process runs per epoch: its shard, padded as DistributedSampler pads them.</summary>
    public int ExamplesPerProcess => (TrainExamples + WorldSize - 1) / WorldSize;

    public static TrainingPlan Create(TrainingArguments args, int trainExamples, int worldSize = 1)
    {
        if (trainExamples <= 0) throw new ArgumentException("the training set is empty");
        if (args.PerDeviceTrainBatchSize <= 0) throw new ArgumentException($"per_device_train_batch_size must be positive, got {args.PerDeviceTrainBatchSize}");
        if (args.GradientAccumulationSteps <= 0) throw new ArgumentException($"gradient_accumulation_steps must be positive, got {args.GradientAccumulationSteps}");
        if (args.MaxSteps <= 0 && !(args.NumTrainEpochs > 0))
            throw new ArgumentException($"num_train_epochs must be positive when max_steps is not set, got {args.NumTrainEpochs}");

        int batch = args.PerDeviceTrainBatchSize, accumulation = args.GradientAccumulationSteps;
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        int shard = (trainExamples + worldSize - 1) / worldSize;
        int batchesPerEpoch = (shard + batch - 1) / batch;
        int updatesPerEpoch = Math.Max(batchesPerEpoch / accumulation, 1);
        int maxSteps, epochs;
        double samples;
        if (args.MaxSteps > 0)
        {
            maxSteps = args.MaxSteps;
            epochs = maxSteps / updatesPerEpoch + (maxSteps % updatesPerEpoch > 0 ? 1 : 0);
            samples = (double)maxSteps * batch * accumulation * worldSize;
        }
        else
        {
            maxSteps = checked((int)Math.Ceiling(args.NumTrainEpochs * updatesPerEpoch));
            epochs = (int)Math.Ceiling(args.NumTrainEpochs);
            samples = trainExamples * args.NumTrainEpochs;
        }
        return new TrainingPlan(trainExamples, batch, accumulation, batchesPerEpoch, updatesPerEpoch, maxSteps, epochs, samples, worldSize);
    }

    /// <summary>
    /// Whether the micro-batch just run ends an optimizer step. Micro-batches are grouped by GA over the whole run,
    /// across epoch boundaries, as transformers 4.40 counts them (total_batched_samples % GA); an epoch with no
    /// more batches than GA also steps at its last batch.
    /// </summary>
    public bool EndsOptimizerStep(long microBatchesSeen, int batchIndexInEpoch) =>
        microBatchesSeen % GradientAccumulationSteps == 0
        || (BatchesPerEpoch <= GradientAccumulationSteps && batchIndexInEpoch + 1 == BatchesPerEpoch);
}
