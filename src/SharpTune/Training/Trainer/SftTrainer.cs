using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Distributed;
using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Training.Optim;
using SharpTune.Training.Schedules;

namespace SharpTune.Training.Trainer;

/// <summary>
/// Training on one CPU process with transformers 4.40 Trainer semantics, as LLaMA-Factory drives it: a seeded
/// shuffle of the training examples per epoch, each batch run by the stage's <see cref="ITrainingStep{TExample}"/>
/// (the only thing the trainer knows of a stage's examples and objective: SFT's collates them through an
/// <see cref="IBatchCollator{TExample}"/> for the model's cross-entropy), the metrics the step stores per batch logged
/// as their mean (or the step's own aggregate) beside the loss, gradient accumulation (each
/// micro-batch's mean loss scaled by 1/GA), clipping, the optimizer named by optim (<see cref="OptimizerNames"/>) at
/// the scheduled learning rate, logs every logging_steps, evaluation and checkpoints per their strategies, and the
/// final outputs LLaMA-Factory's SFT workflow leaves: the model and trainer_log.jsonl, which the trainer writes, and
/// the final metrics and state as <see cref="ResultsReported"/> and <see cref="FinalStateReported"/> events, which
/// <c>Reporting/ResultFiles</c> writes (train_results.json, all_results.json, trainer_state.json) when it observes the
/// run. Checkpoints hold everything needed to resume bit for bit.
/// Launched by mpirun (<see cref="ProcessGroup.Current"/>), it trains data-parallel as transformers does under DDP:
/// every process takes its shard of each epoch's shuffled order (DistributedSampler's interleave), gradients are
/// averaged over the processes (<see cref="GradientAverager"/>) before clipping and the optimizer step, the logged
/// loss is the mean over the processes, and only rank 0 evaluates and writes files.
/// </summary>
public class Trainer<TExample>
{
    private const ulong DropoutStream = 0xD1B5_4A32_D192_ED03;

    private readonly ITrainableModel _model;
    private readonly TrainingArguments _args;
    private readonly IReadOnlyList<TExample> _train;
    private readonly IReadOnlyList<TExample> _eval;
    private readonly ITrainingStep<TExample> _step;
    private readonly IRunObserver _observer;
    private readonly int _evalSteps;
    private readonly LossEvaluator<TExample>? _evaluator;
    private readonly ProcessGroup? _world = ProcessGroup.Current;

    public TrainingPlan Plan { get; }
    public LrSchedule Schedule { get; }

    public Trainer(ITrainableModel model, TrainingArguments args, IReadOnlyList<TExample> trainExamples,
        IReadOnlyList<TExample>? evalExamples, IBatchCollator<TExample> collator, IRunObserver? observer = null)
        : this(model, args, trainExamples, evalExamples, new CrossEntropyStep<TExample>(model, collator), observer)
    {
    }

    /// <param name="step">The stage's step over a batch of examples; it trains <paramref name="model"/>'s parameters.</param>
    public Trainer(ITrainableModel model, TrainingArguments args, IReadOnlyList<TExample> trainExamples,
        IReadOnlyList<TExample>? evalExamples, ITrainingStep<TExample> step, IRunObserver? observer = null)
    {
        _model = model;
        _args = args;
        _train = trainExamples;
        _eval = evalExamples ?? [];
        _step = step;
        _observer = observer ?? RunObservers.None;

        if (string.IsNullOrWhiteSpace(args.OutputDir)) throw new ArgumentException("output_dir is required for training");
        if (args.LoggingSteps <= 0) throw new ArgumentException($"logging_steps must be positive, got {args.LoggingSteps}");
        CheckStrategy("save_strategy", args.SaveStrategy);
        CheckStrategy("eval_strategy", args.EvalStrategy);
        if (args.SaveStrategy == "steps" && args.SaveSteps <= 0) throw new ArgumentException($"save_steps must be positive with save_strategy steps, got {args.SaveSteps}");
        _evalSteps = args.EvalSteps ?? args.LoggingSteps;
        if (args.EvalStrategy == "steps" && _evalSteps <= 0) throw new ArgumentException($"eval_steps must be positive with eval_strategy steps, got {_evalSteps}");
        if ((args.EvalStrategy != "no" || args.DoEval) && _eval.Count == 0)
            throw new ArgumentException($"eval_strategy is '{args.EvalStrategy}'{(args.DoEval ? " and do_eval is set" : "")} but there is no evaluation set (set eval_dataset or val_size)");
        _evaluator = _eval.Count > 0 ? new LossEvaluator<TExample>(step, _eval, args.PerDeviceEvalBatchSize) : null;

        Plan = TrainingPlan.Create(args, trainExamples.Count, _world?.Size ?? 1);
        Schedule = LrSchedule.Create(args, Plan.MaxSteps);
    }

    private static void CheckStrategy(string name, string value)
    {
        if (value is not ("no" or "steps" or "epoch"))
            throw new ArgumentException($"{name} must be no, steps or epoch, got '{value}'");
    }

    /// <summary>
    /// Trains to max_steps (or resumes per resume_from_checkpoint and continues), reporting to the observer as it goes
    /// (trainer_log.jsonl is written by an observer of its own). When <paramref name="cancellation"/> fires, the current
    /// optimizer step is finished, a checkpoint is saved, and the result says Interrupted.
    /// </summary>
    public TrainResult Train(CancellationToken cancellation = default) => new Run(this).Execute(cancellation);

    /// <summary>One pass over the evaluation set (see <see cref="LossEvaluator{TExample}"/>).</summary>
    public EvalResult Evaluate() =>
        (_evaluator ?? throw new InvalidOperationException("there is no evaluation set")).Evaluate();

    /// <summary>The mutable state of one Train call.</summary>
    private sealed class Run
    {
        private readonly Trainer<TExample> _t;
        private readonly TrainingPlan _plan;
        private readonly string _outputDir;
        private readonly IOptimizer _optimizer;
        private readonly TrainerState _state;
        private readonly Stopwatch _clock = new();
        private readonly GradientAverager? _averager;
        private readonly bool _writes = ProcessGroup.WritesOutputs;
        private SeededRandom _dropout;
        private SeededRandom _dataOrder;
        private int _epoch;
        private int _nextBatch;
        private bool _epochEndHandled;
        private int[] _order = [];
        private long _microBatches;
        /// <summary>This rank's real tokens of the optimizer step in progress (added to the others' at its end).</summary>
        private long _stepTokens;
        /// <summary>Σ micro-batch mean / GA of the optimizer step in progress (for the live display).</summary>
        private double _stepLoss;
        /// <summary>Whether micro-batches have added to the gradients since the last optimizer step.</summary>
        private bool _gradientsPending;
        private double _pendingLoss;
        /// <summary>The step's metrics of the micro-batches since the last log.</summary>
        private readonly MetricStore _storedMetrics = new();
        private int _lastLoggedStep;
        private double _totalLoss;
        private long _tokensSeen;
        private long _tokensAtStart;
        private int _stepsAtStart;
        private int _lastSavedStep = -1;
        private string? _lastCheckpoint;
        private readonly RunCheckpoints _checkpoints;
        /// <summary>The caller's observer until trainer_log.jsonl is opened (after the resume), then both.</summary>
        private IRunObserver _events;

        public Run(Trainer<TExample> trainer)
        {
            _t = trainer;
            _plan = trainer.Plan;
            _outputDir = trainer._args.OutputDir;
            _checkpoints = new RunCheckpoints(_outputDir, trainer._args.SaveTotalLimit);
            var args = trainer._args;
            _optimizer = OptimizerNames.Create(args.Optim, trainer._model.TrainableParameters, args);
            if (trainer._world is { } world) _averager = new GradientAverager(world, trainer._model.TrainableParameters, trainer._model.Decoder);
            _state = new TrainerState
            {
                MaxSteps = _plan.MaxSteps,
                NumTrainEpochs = _plan.EpochsToRun,
                LoggingSteps = args.LoggingSteps,
                EvalSteps = args.EvalStrategy == "steps" ? trainer._evalSteps : args.EvalSteps ?? 500,
                SaveSteps = args.SaveSteps,
                TrainBatchSize = args.PerDeviceTrainBatchSize,
            };
            _events = trainer._observer;
            _dataOrder = new SeededRandom((ulong)args.Seed);
            // Dropout draws from its own stream so that the data order does not depend on how much dropout is used.
            _dropout = new SeededRandom((ulong)args.Seed ^ DropoutStream);
        }

        /// <summary>Trains (see <see cref="Train"/>); the optimizer's state is released at the end, however it ends.</summary>
        public TrainResult Execute(CancellationToken cancellation)
        {
            using (_optimizer) return Train(cancellation);
        }

        private TrainResult Train(CancellationToken cancellation)
        {
            _clock.Start();
            Directory.CreateDirectory(_outputDir);
            if (_writes)
                foreach (string removed in CheckpointFolders.RemoveAbandoned(_outputDir))
                    _events.On(new TrainerNote($"removed the incomplete {removed}, left by a crashed run"));
            // The other ranks look for the checkpoint to resume from once rank 0 has tidied output_dir.
            _t._world?.Barrier();
            foreach (var p in _t._model.TrainableParameters) p.ZeroGrad();

            string? resumeFrom = ResumePolicy.CheckpointToResume(_t._args);
            bool resumedMidEpoch = false;
            if (resumeFrom is not null)
            {
                RestoreFrom(resumeFrom);
                resumedMidEpoch = true;
            }
            _checkpoints.Start(resuming: resumeFrom is not null, rotate: _writes, _events);
            if (_writes) _events = new RunObservers(new TrainerLogFile(_outputDir, resumeFrom is null ? null : _state.GlobalStep), _t._observer);
            _stepsAtStart = _state.GlobalStep;
            _tokensAtStart = _tokensSeen;

            var args = _t._args;
            for (; _epoch < _plan.EpochsToRun; _epoch++)
            {
                if (!resumedMidEpoch) StartEpoch();
                resumedMidEpoch = false;

                while (_nextBatch < _plan.BatchesPerEpoch && _state.GlobalStep < _plan.MaxSteps)
                {
                    double? stepLoss = RunMicroBatch();
                    if (stepLoss is null) continue;
                    if (_averager is not null) stepLoss = AverageOverRanks(stepLoss.Value);

                    double gradNorm = GradientClipping.Clip(_optimizer.Parameters, args.MaxGradNorm);
                    _optimizer.Update(_t.Schedule.LearningRate(_state.GlobalStep));
                    foreach (var p in _optimizer.Parameters) p.ZeroGrad();
                    _state.GlobalStep++;
                    _state.Epoch = _epoch + (double)_nextBatch / _plan.BatchesPerEpoch;
                    double? loggedNorm = args.MaxGradNorm > 0 ? gradNorm : null;
                    _events.On(new StepCompleted(Snapshot(stepLoss, loggedNorm)));

                    int step = _state.GlobalStep;
                    bool last = step >= _plan.MaxSteps;
                    bool cancelled = cancellation.IsCancellationRequested;
                    // Every rank stops at the same step, so that they all take part in its checkpoint.
                    if (_t._world is { } world) cancelled = world.Mean(cancelled ? 1 : 0) > 0;
                    if (step % args.LoggingSteps == 0) LogTraining(loggedNorm);
                    if (args.EvalStrategy == "steps" && step % _t._evalSteps == 0 && _writes) LogEvaluation();
                    if ((args.SaveStrategy == "steps" && step % args.SaveSteps == 0) || (last && args.SaveStrategy != "no"))
                        SaveCheckpoint();
                    if (cancelled)
                    {
                        if (_lastSavedStep != step) SaveCheckpoint();
                        _events.On(new TrainerNote($"interrupted at step {step}/{_plan.MaxSteps}; resume with resume_from_checkpoint: {_lastCheckpoint}"));
                        return Ended(new TrainResult(true, step, _plan.MaxSteps, _state.Epoch, _lastCheckpoint,
                            new Dictionary<string, double>(), _state.LogHistory.ToList()));
                    }
                }

                // transformers runs the end-of-epoch callbacks also when max_steps ends the epoch early.
                if (!_epochEndHandled)
                {
                    _epochEndHandled = true;
                    if (args.EvalStrategy == "epoch" && _writes) LogEvaluation();
                    if (args.SaveStrategy == "epoch") SaveCheckpoint();
                }
                if (_state.GlobalStep >= _plan.MaxSteps) break;
            }
            return Finish();
        }

        /// <summary>
        /// Runs the next micro-batch forward and backward; returns the optimizer step's loss (Σ mean/GA over its
        /// micro-batches) when this micro-batch completes a step, else null.
        /// </summary>
        private double? RunMicroBatch()
        {
            int size = _plan.BatchSize;
            int start = _nextBatch * size;
            var examples = new List<TExample>(size);
            // This process's shard: DistributedSampler's positions rank, rank + world, ... of the order, wrapping
            // around to pad the last ones (one process: the order itself).
            int world = _plan.WorldSize, rank = _t._world?.Rank ?? 0;
            for (int i = start; i < Math.Min(start + size, _plan.ExamplesPerProcess); i++)
                examples.Add(_t._train[_order[(i * world + rank) % _order.Length]]);
            int accumulation = _plan.GradientAccumulationSteps;
            if (_plan.EndsOptimizerStep(_microBatches + 1, _nextBatch)) _averager?.OverlapNextBackward();
            var result = _t._step.ForwardBackward(examples, 1f / accumulation, _dropout);
            FaultInjection.Point("micro-batch-done");

            _microBatches++;
            _tokensSeen += result.RealTokens;
            _stepTokens += result.RealTokens;
            _storedMetrics.Add(result.Metrics);
            double scaled = result.Loss / accumulation;
            _stepLoss += scaled;
            // transformers' logging_nan_inf_filter: a non-finite loss counts as the average of the logged window so far.
            _pendingLoss += double.IsFinite(scaled) ? scaled : _pendingLoss / (1 + _state.GlobalStep - _lastLoggedStep);
            int batchIndex = _nextBatch++;
            _gradientsPending = true;
            if (!_plan.EndsOptimizerStep(_microBatches, batchIndex)) return null;
            double stepLoss = _stepLoss;
            _stepLoss = 0;
            _gradientsPending = false;
            return stepLoss;
        }

        /// <summary>
        /// The end of a data-parallel optimizer step's micro-batches: the gradients averaged over the ranks, the
        /// tokens the other ranks saw added; returns the step's loss as its mean over the ranks.
        /// </summary>
        private double AverageOverRanks(double stepLoss)
        {
            _averager!.Average();
            Span<double> sums = [stepLoss, _stepTokens];
            _t._world!.SumInPlace(sums);
            _tokensSeen += (long)sums[1] - _stepTokens;
            _stepTokens = 0;
            return sums[0] / _t._world.Size;
        }

        /// <summary>
        /// transformers' <c>_nested_gather(tr_loss).mean()</c>: the loss summed since the last log, as its mean over
        /// the ranks (each rank's own sum without mpirun).
        /// </summary>
        private double PendingLossOverRanks() => _t._world?.Mean(_pendingLoss) ?? _pendingLoss;

        private void StartEpoch()
        {
            _order = new int[_plan.TrainExamples];
            for (int i = 0; i < _order.Length; i++) _order[i] = i;
            _dataOrder.Shuffle(_order);
            _nextBatch = 0;
            _epochEndHandled = false;
        }

        private void RestoreFrom(string dir)
        {
            var (resume, saved) = TrainingCheckpoint.Restore(dir, _t._model, _optimizer);
            if (saved.GlobalStep != resume.GlobalStep)
                throw new InvalidDataException($"checkpoint {dir}: {TrainerState.FileName} is at step {saved.GlobalStep} but {ResumeState.FileName} at step {resume.GlobalStep}");
            if (resume.TrainExamples != _plan.TrainExamples || resume.BatchSize != _plan.BatchSize)
                throw new ArgumentException($"checkpoint {dir} was trained on {resume.TrainExamples} examples in batches of {resume.BatchSize}; this run has {_plan.TrainExamples} in batches of {_plan.BatchSize}, so its data position does not apply");
            if (resume.Order.Length != _plan.TrainExamples || !resume.Order.Order().SequenceEqual(Enumerable.Range(0, _plan.TrainExamples)))
                throw new InvalidDataException($"checkpoint {dir}: the saved example order is not a permutation of the {_plan.TrainExamples} training examples");
            if (resume.NextBatch is < 0 || resume.NextBatch > _plan.BatchesPerEpoch)
                throw new InvalidDataException($"checkpoint {dir}: batch position {resume.NextBatch} is outside the epoch's {_plan.BatchesPerEpoch} batches");
            if (resume.WorldSize != _plan.WorldSize)
                throw new ArgumentException($"checkpoint {dir} was trained by {resume.WorldSize} process{(resume.WorldSize == 1 ? "" : "es")} and this run has {_plan.WorldSize}: each process's data shard and dropout generator are saved for that number, so resume with the same number (mpirun -np {resume.WorldSize}{(resume.WorldSize == 1 ? ", or without mpirun" : "")})");
            if (resume.WorldSize > 1 && resume.DropoutRandomByRank.Count != resume.WorldSize)
                throw new InvalidDataException($"checkpoint {dir}: {ResumeState.FileName} holds {resume.DropoutRandomByRank.Count} dropout generators for {resume.WorldSize} processes");
            if (resume.SchedulerType != _t.Schedule.Type || resume.SchedulerTotalSteps != _t.Schedule.TotalSteps || resume.SchedulerWarmupSteps != _t.Schedule.WarmupSteps)
                _events.On(new TrainerNote($"note: the checkpoint was trained with a {resume.SchedulerType} schedule over {resume.SchedulerTotalSteps} steps ({resume.SchedulerWarmupSteps} warmup); continuing with {_t.Schedule.Type} over {_t.Schedule.TotalSteps} ({_t.Schedule.WarmupSteps} warmup)"));

            _state.GlobalStep = resume.GlobalStep;
            _state.Epoch = saved.Epoch;
            _state.LogHistory.AddRange(saved.LogHistory);
            _dropout = SeededRandom.FromState(resume.WorldSize > 1 ? resume.DropoutRandomByRank[_t._world!.Rank] : resume.DropoutRandom);
            _dataOrder = SeededRandom.FromState(resume.DataOrderRandom);
            _epoch = resume.Epoch;
            _nextBatch = resume.NextBatch;
            _epochEndHandled = resume.EpochEndHandled;
            _order = resume.Order;
            _microBatches = resume.MicroBatchesSeen;
            _gradientsPending = resume.HasAccumulatedGradients;
            _stepLoss = resume.StepLoss;
            _pendingLoss = resume.PendingLoss;
            _storedMetrics.Clear();
            _storedMetrics.Add(resume.StoredMetrics);
            _lastLoggedStep = resume.LastLoggedStep;
            _totalLoss = resume.TotalLoss;
            _tokensSeen = resume.TokensSeen;
            _lastSavedStep = resume.GlobalStep;
            _lastCheckpoint = dir;
            _events.On(new TrainerNote($"resumed from {dir} at step {resume.GlobalStep}/{_plan.MaxSteps}"));
        }

        private void LogTraining(double? gradNorm)
        {
            int steps = _state.GlobalStep - _lastLoggedStep;
            _pendingLoss = PendingLossOverRanks();
            var values = new List<KeyValuePair<string, object?>> { new("loss", PythonJson.Round(_pendingLoss / steps, 4)) };
            if (gradNorm is { } norm) values.Add(new("grad_norm", norm));
            // transformers logs after scheduler.step(): the rate of the next optimizer step.
            values.Add(new("learning_rate", _t.Schedule.LearningRate(_state.GlobalStep)));
            values.AddRange(_t._step.Logged(_storedMetrics, ""));
            _storedMetrics.Clear();
            _totalLoss += _pendingLoss;
            _pendingLoss = 0;
            _lastLoggedStep = _state.GlobalStep;
            var entry = AddLog(values);
            _events.On(new StepLogged(Snapshot(entry.TryGetDouble("loss"), gradNorm), entry));
        }

        private void LogEvaluation()
        {
            var result = _t.Evaluate();
            AddLog(result.Metrics());
            _events.On(new Evaluated(_state.GlobalStep, _plan.MaxSteps, result, AfterTraining: false));
        }

        /// <summary>
        /// Trainer.log: adds epoch (rounded to 2 places) and step and keeps it in log_history; while training it also
        /// goes to trainer_log.jsonl (LLaMA-Factory's LogCallback stops writing when training ends).
        /// </summary>
        private LogEntry AddLog(List<KeyValuePair<string, object?>> values, bool toTrainerLog = true)
        {
            values.Add(new("epoch", PythonJson.Round(_state.Epoch, 2)));
            values.Add(new("step", _state.GlobalStep));
            var entry = new LogEntry(values);
            _state.LogHistory.Add(entry);
            if (toTrainerLog)
                _events.On(new HistoryLogged(entry, _state.GlobalStep, _plan.MaxSteps, _tokensSeen,
                    new RunSegment(_state.GlobalStep - _stepsAtStart, _tokensSeen - _tokensAtStart, _clock.Elapsed)));
            return entry;
        }

        private void SaveCheckpoint()
        {
            var dropoutByRank = _t._world is { } world ? ShareRankStateForCheckpoint(world) : [];
            var resume = new ResumeState
            {
                GlobalStep = _state.GlobalStep,
                Epoch = _epoch,
                NextBatch = _nextBatch,
                EpochEndHandled = _epochEndHandled,
                MicroBatchesSeen = _microBatches,
                HasAccumulatedGradients = _gradientsPending,
                StepLoss = _stepLoss,
                Order = _order,
                DropoutRandom = _dropout.State,
                DataOrderRandom = _dataOrder.State,
                PendingLoss = _pendingLoss,
                StoredMetrics = _storedMetrics.Keys.SelectMany(key => _storedMetrics[key].Select(v => new KeyValuePair<string, double>(key, v))).ToList(),
                LastLoggedStep = _lastLoggedStep,
                TotalLoss = _totalLoss,
                TokensSeen = _tokensSeen,
                SchedulerType = _t.Schedule.Type,
                SchedulerTotalSteps = _t.Schedule.TotalSteps,
                SchedulerWarmupSteps = _t.Schedule.WarmupSteps,
                TrainExamples = _plan.TrainExamples,
                BatchSize = _plan.BatchSize,
                GradientAccumulationSteps = _plan.GradientAccumulationSteps,
                WorldSize = _plan.WorldSize,
                DropoutRandomByRank = dropoutByRank,
            };
            if (!_writes)
            {
                _lastSavedStep = _state.GlobalStep;
                return;
            }
            _lastCheckpoint = _checkpoints.Save(_state.GlobalStep,
                dir => TrainingCheckpoint.Write(dir, _t._model, _optimizer, resume, _state), _events);
            _lastSavedStep = _state.GlobalStep;
        }

        /// <summary>
        /// Makes what differs between the ranks one state that rank 0 can save for all: the loss sums since the last
        /// log and of an unfinished step, and an unfinished step's gradients, become their means over the ranks on
        /// every rank (at the next log or step the mean of mean + rest is the mean of the whole, as before); returns
        /// every rank's dropout generator, by rank.
        /// </summary>
        private IReadOnlyList<ulong[]> ShareRankStateForCheckpoint(ProcessGroup world)
        {
            Span<double> losses = [_pendingLoss, _stepLoss];
            world.SumInPlace(losses);
            _pendingLoss = losses[0] / world.Size;
            _stepLoss = losses[1] / world.Size;
            // Whether gradients are pending depends only on the step arithmetic, the same on every rank.
            if (_gradientsPending) _averager!.Average();
            return world.GatherAll(_dropout.State);
        }


        private TrainResult Finish()
        {
            double runtime = _clock.Elapsed.TotalSeconds;
            _pendingLoss = PendingLossOverRanks();
            double trainLoss = (_totalLoss + _pendingLoss) / Math.Max(_state.GlobalStep, 0.001);
            var metrics = new List<KeyValuePair<string, object?>>
            {
                new("train_runtime", PythonJson.Round(runtime, 4)),
                new("train_samples_per_second", PythonJson.Round(_plan.NumTrainSamples / runtime, 3)),
                new("train_steps_per_second", PythonJson.Round(_plan.MaxSteps / runtime, 3)),
                new("train_loss", trainLoss),
            };
            AddLog(metrics);

            if (_writes)
            {
                _t._model.Save(_outputDir);
                _checkpoints.RemoveSuperseded(_lastCheckpoint, _events);
            }
            var trainMetrics = metrics.Where(kv => kv.Key != "step").ToList();
            _events.On(new ResultsReported("train", trainMetrics));
            _events.On(new FinalStateReported(_state.Snapshot()));
            _events.On(new TrainerNote($"training finished: {_state.GlobalStep} steps, train_loss {trainLoss:0.0000}, {runtime:0.0} s; saved to {_outputDir}"));

            var all = trainMetrics.ToDictionary(kv => kv.Key, kv => Convert.ToDouble(kv.Value, System.Globalization.CultureInfo.InvariantCulture));
            if (_t._args.DoEval && _t._eval.Count > 0 && _writes)
            {
                var result = _t.Evaluate();
                var evalMetrics = result.Metrics();
                AddLog(evalMetrics, toTrainerLog: false);
                evalMetrics.RemoveAll(kv => kv.Key == "step");
                if (_t._step.ReportsPerplexity) evalMetrics.Add(new("perplexity", result.Perplexity));
                _events.On(new ResultsReported("eval", evalMetrics));
                foreach (var (key, value) in evalMetrics) all[key] = Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture);
                _events.On(new Evaluated(_state.GlobalStep, _plan.MaxSteps, result, AfterTraining: true));
            }
            return Ended(new TrainResult(false, _state.GlobalStep, _plan.MaxSteps, _state.Epoch, _lastCheckpoint, all, _state.LogHistory.ToList()));
        }

        private TrainResult Ended(TrainResult result)
        {
            _events.On(new TrainingEnded(result));
            return result;
        }

        private ProgressSnapshot Snapshot(double? loss, double? gradNorm)
        {
            double elapsed = _clock.Elapsed.TotalSeconds;
            int stepsThisRun = _state.GlobalStep - _stepsAtStart;
            double remaining = stepsThisRun > 0 ? elapsed / stepsThisRun * (_plan.MaxSteps - _state.GlobalStep) : 0;
            return new ProgressSnapshot(_state.GlobalStep, _plan.MaxSteps, loss, _t.Schedule.LearningRate(_state.GlobalStep), gradNorm,
                _state.Epoch, elapsed > 0 ? (_tokensSeen - _tokensAtStart) / elapsed : 0,
                TimeSpan.FromSeconds(elapsed), TimeSpan.FromSeconds(remaining));
        }
    }
}

/// <summary>
/// Supervised fine-tuning (and continued pretraining): the trainer over <see cref="SupervisedExample"/>s, right-padded
/// by <see cref="SupervisedCollator"/> with <paramref name="padTokenId"/>.
/// </summary>
public sealed class SftTrainer(ITrainableModel model, TrainingArguments args, IReadOnlyList<SupervisedExample> trainExamples,
    IReadOnlyList<SupervisedExample>? evalExamples, int padTokenId, IRunObserver? observer = null)
    : Trainer<SupervisedExample>(model, args, trainExamples, evalExamples, new SupervisedBatches(padTokenId), observer);
