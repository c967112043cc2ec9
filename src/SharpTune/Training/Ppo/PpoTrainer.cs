using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.IO;
using SharpTune.Training.Objectives;
using SharpTune.Training.Optim;
using SharpTune.Training.Preference;
using SharpTune.Training.Reward;
using SharpTune.Training.Schedules;
using SharpTune.Training.Trainer;

namespace SharpTune.Training.Ppo;

/// <summary>Stage ppo's keys (ppo_epochs, ppo_buffer_size, ppo_target, ppo_score_norm, ppo_whiten_rewards).</summary>
public sealed record PpoSettings(int Epochs, int BufferSize, double Target, bool ScoreNorm, bool WhitenRewards)
{
    public static PpoSettings From(FinetuningArguments f) => new(f.PpoEpochs, f.PpoBufferSize, f.PpoTarget, f.PpoScoreNorm, f.PpoWhitenRewards);
}

/// <summary>
/// LLaMA-Factory's CustomPPOTrainer.ppo_train driving TRL 0.9's PPOTrainer.step, on one process. Each global step takes
/// the next batch of per_device_train_batch_size × gradient_accumulation_steps × ppo_buffer_size prompts (shuffled, the
/// last partial batch dropped, a new order when the prompts run out), has the policy answer and the reward source
/// score them one mini-batch (per_device_train_batch_size) at a time, then runs TRL's step: the policy's log-probs and
/// values and the reference's log-probs of the responses, per-token KL rewards with the score on the last token, GAE
/// (γ 1, λ 0.95), whitened advantages, and ppo_epochs passes over the batch shuffled into backward batches of
/// gradient_accumulation_steps mini-batches, each backward batch one clipped optimizer step of the clipped policy
/// loss + 0.1 × the clipped value loss (a mini-batch whose mean ratio exceeds 10 adds nothing). The learning rate
/// steps once per global step and the adaptive KL coefficient (0.2 at the start, horizon 10000) after it. Logs carry
/// LLaMA-Factory's loss (ppo/loss/total), reward (the raw scores' mean), learning_rate and epoch, then TRL's statistics
/// by their names. The policy saves as an adapter (or weights) with value_head.safetensors; checkpoints hold what
/// <see cref="TrainingCheckpoint"/> holds and the PPO state (KL coefficient, running score moments, meters, the
/// mini-batch shuffle's generator) in <see cref="StateFileName"/>, so a resumed run continues exactly.
/// </summary>
public sealed class PpoTrainer
{
    public const string StateFileName = "ppo_state.json";

    // TRL 0.9 PPOConfig defaults, which LLaMA-Factory does not change.
    public const double InitialKlCoefficient = 0.2;
    public const double KlHorizon = 10000;
    public const double Gamma = 1;
    public const double Lambda = 0.95;
    public const double ClipRange = 0.2;
    public const double ValueClipRange = 0.2;
    public const double ValueCoefficient = 0.1;
    public const double RatioThreshold = 10;

    private const ulong DropoutStream = 0xD1B5_4A32_D192_ED03;
    private const ulong MiniBatchStream = 0x9E37_79B9_7F4A_7C15;

    /// <summary>The policy's responses to a mini-batch of prompts, sampled from <paramref name="seed"/>.</summary>
    public delegate PpoSample[] Rollout(IReadOnlyList<GenerationExample> prompts, int seed);

    /// <summary>One score per sample from the reward source.</summary>
    public delegate double[] Scorer(IReadOnlyList<PpoSample> samples);

    private readonly RewardModel _policy;
    private readonly ReferenceModel _reference;
    private readonly TrainingArguments _args;
    private readonly PpoSettings _settings;
    private readonly IReadOnlyList<GenerationExample> _prompts;
    private readonly Rollout _rollout;
    private readonly Scorer _score;
    private readonly int _padTokenId;
    private readonly IRunObserver _observer;
    private readonly int _stepsInEpoch;

    public TrainingPlan Plan { get; }
    public LrSchedule Schedule { get; }
    /// <summary>TRL's batch_size: the prompts of one global step.</summary>
    public int StepBatchSize { get; }

    /// <param name="policy">The trained model with its value head (TRL's AutoModelForCausalLMWithValueHead).</param>
    public PpoTrainer(RewardModel policy, ReferenceModel reference, TrainingArguments args, PpoSettings settings, IReadOnlyList<GenerationExample> prompts,
        Rollout rollout, Scorer score, int padTokenId, IRunObserver? observer = null)
    {
        if (string.IsNullOrWhiteSpace(args.OutputDir)) throw new ArgumentException("output_dir is required for training");
        if (args.LoggingSteps <= 0) throw new ArgumentException($"logging_steps must be positive, got {args.LoggingSteps}");
        if (args.PerDeviceTrainBatchSize <= 0) throw new ArgumentException($"per_device_train_batch_size must be positive, got {args.PerDeviceTrainBatchSize}");
        if (args.GradientAccumulationSteps <= 0) throw new ArgumentException($"gradient_accumulation_steps must be positive, got {args.GradientAccumulationSteps}");
        if (args.MaxSteps <= 0 && !(args.NumTrainEpochs > 0)) throw new ArgumentException($"num_train_epochs must be positive when max_steps is not set, got {args.NumTrainEpochs}");
        _policy = policy;
        _reference = reference;
        _args = args;
        _settings = settings;
        _prompts = prompts;
        _rollout = rollout;
        _score = score;
        _padTokenId = padTokenId;
        _observer = observer ?? RunObservers.None;

        int mini = args.PerDeviceTrainBatchSize, accumulation = args.GradientAccumulationSteps;
        StepBatchSize = mini * accumulation * settings.BufferSize;
        int batches = prompts.Count / StepBatchSize;
        if (batches == 0)
            throw new ArgumentException($"the training set has {prompts.Count} prompts, fewer than one PPO batch of {StepBatchSize} (per_device_train_batch_size {mini} × gradient_accumulation_steps {accumulation} × ppo_buffer_size {settings.BufferSize})");
        int maxSteps = args.MaxSteps > 0 ? args.MaxSteps : checked((int)Math.Ceiling(args.NumTrainEpochs * batches));
        _stepsInEpoch = args.MaxSteps > 0 ? args.MaxSteps : batches;
        int epochs = args.MaxSteps > 0 ? (maxSteps + batches - 1) / batches : (int)Math.Ceiling(args.NumTrainEpochs);
        Plan = new TrainingPlan(prompts.Count, mini, accumulation, batches, batches, maxSteps, epochs, (double)maxSteps * StepBatchSize);
        // LLaMA-Factory sizes the schedule by ceil(prompts / batch) per epoch, the dataloader by floor (it drops the last partial batch).
        int scheduleSteps = args.MaxSteps > 0 ? args.MaxSteps
            : checked((int)Math.Ceiling(args.NumTrainEpochs * Math.Ceiling(prompts.Count / (double)StepBatchSize)));
        Schedule = LrSchedule.Create(args, scheduleSteps);
    }

    /// <summary>
    /// Trains to the last step (or resumes per resume_from_checkpoint and continues). When <paramref name="cancellation"/>
    /// fires, the step in progress finishes, a checkpoint is saved and the result says Interrupted.
    /// </summary>
    public TrainResult Train(CancellationToken cancellation = default) => new Run(this).Execute(cancellation);

    /// <summary>
    /// Query + response right-padded with <paramref name="padTokenId"/>, the response tokens as labels: the label rows
    /// are the rows TRL's mask keeps (len(query) − 1 up to the response's end), where its log-probs and values are read.
    /// </summary>
    public static TrainingBatch Collate(IReadOnlyList<PpoSample> samples, int padTokenId)
    {
        int t = samples.Max(s => s.Query.Length + s.Response.Length), b = samples.Count;
        var ids = new int[b * t];
        var mask = new int[b * t];
        var labels = new int[b * t];
        Array.Fill(ids, padTokenId);
        Array.Fill(labels, CausalLmLoss.IgnoreIndex);
        for (int s = 0; s < b; s++)
        {
            var (query, response) = (samples[s].Query, samples[s].Response);
            if (query.Length == 0) throw new ArgumentException($"sample {s} has an empty query");
            query.CopyTo(ids, s * t);
            response.CopyTo(ids, s * t + query.Length);
            Array.Fill(mask, 1, s * t, query.Length + response.Length);
            response.CopyTo(labels, s * t + query.Length);
        }
        return new TrainingBatch(b, t, ids, mask, labels);
    }

    /// <summary>Splits values in label-token order into one array per sequence of the batch.</summary>
    private static double[][] PerSequence(double[] values, LabelTokens labels)
    {
        var rows = new double[labels.CountPerSequence.Length][];
        int at = 0;
        for (int s = 0; s < rows.Length; s++)
        {
            rows[s] = values[at..(at + labels.CountPerSequence[s])];
            at += labels.CountPerSequence[s];
        }
        return rows;
    }

    /// <summary>The mutable state of one Train call.</summary>
    private sealed class Run
    {
        private readonly PpoTrainer _t;
        private readonly TrainingPlan _plan;
        private readonly string _outputDir;
        private readonly IOptimizer _optimizer;
        private readonly TrainerState _state;
        private readonly Stopwatch _clock = new();
        private SeededRandom _dropout;
        private SeededRandom _dataOrder;
        private SeededRandom _miniBatchOrder;
        private readonly AdaptiveKlController _kl;
        private readonly RunningMoments _moments = new();
        private int _pass;
        private int _nextBatch;
        private int[] _order = [];
        /// <summary>LLaMA-Factory's loss_meter and reward_meter: Σ value·n and Σ n since the last log.</summary>
        private double _lossSum, _lossCount, _rewardSum, _rewardCount;
        private int _lastLoggedStep;
        private int _stepsAtStart;
        private int _lastSavedStep = -1;
        private string? _lastCheckpoint;
        private readonly RunCheckpoints _checkpoints;
        private IRunObserver _events;

        public Run(PpoTrainer trainer)
        {
            _t = trainer;
            _plan = trainer.Plan;
            var args = trainer._args;
            _outputDir = args.OutputDir;
            _checkpoints = new RunCheckpoints(_outputDir, args.SaveTotalLimit);
            _optimizer = OptimizerNames.Create(args.Optim, trainer._policy.TrainableParameters, args);
            _state = new TrainerState
            {
                MaxSteps = _plan.MaxSteps,
                NumTrainEpochs = _plan.EpochsToRun,
                LoggingSteps = args.LoggingSteps,
                EvalSteps = args.EvalSteps ?? 500,
                SaveSteps = args.SaveSteps,
                TrainBatchSize = args.PerDeviceTrainBatchSize,
            };
            _events = trainer._observer;
            _dataOrder = new SeededRandom((ulong)args.Seed);
            _dropout = new SeededRandom((ulong)args.Seed ^ DropoutStream);
            _miniBatchOrder = new SeededRandom((ulong)args.Seed ^ MiniBatchStream);
            _kl = new AdaptiveKlController(InitialKlCoefficient, trainer._settings.Target, KlHorizon);
        }

        public TrainResult Execute(CancellationToken cancellation)
        {
            using (_optimizer) return Train(cancellation);
        }

        private TrainResult Train(CancellationToken cancellation)
        {
            _clock.Start();
            Directory.CreateDirectory(_outputDir);
            foreach (string removed in CheckpointFolders.RemoveAbandoned(_outputDir))
                _events.On(new TrainerNote($"removed the incomplete {removed}, left by a crashed run"));
            foreach (var p in _optimizer.Parameters) p.ZeroGrad();
            string? resumeFrom = ResumePolicy.CheckpointToResume(_t._args);
            if (resumeFrom is not null) RestoreFrom(resumeFrom);
            _checkpoints.Start(resuming: resumeFrom is not null, rotate: true, _events);
            _events = new RunObservers(new TrainerLogFile(_outputDir, resumeFrom is null ? null : _state.GlobalStep), _t._observer);
            _stepsAtStart = _state.GlobalStep;

            while (_state.GlobalStep < _plan.MaxSteps)
            {
                if (_order.Length == 0 || _nextBatch == _plan.BatchesPerEpoch) StartPass();
                var prompts = _order.Skip(_nextBatch * _t.StepBatchSize).Take(_t.StepBatchSize).Select(i => _t._prompts[i]).ToList();
                _nextBatch++;
                var stats = Step(prompts);
                _state.GlobalStep++;
                int step = _state.GlobalStep;
                _state.Epoch = (double)step / _t._stepsInEpoch;
                _lossSum += stats.Loss * prompts.Count;
                _lossCount += prompts.Count;
                _rewardSum += stats.Reward * prompts.Count;
                _rewardCount += prompts.Count;
                _events.On(new StepCompleted(Snapshot(stats.Loss, stats.GradNorm, stats.LearningRate)));

                bool cancelled = cancellation.IsCancellationRequested;
                if (step % _t._args.LoggingSteps == 0) Log(stats);
                if (_t._args.SaveSteps > 0 && step % _t._args.SaveSteps == 0) SaveCheckpoint();
                if (cancelled)
                {
                    if (_lastSavedStep != step) SaveCheckpoint();
                    _events.On(new TrainerNote($"interrupted at step {step}/{_plan.MaxSteps}; resume with resume_from_checkpoint: {_lastCheckpoint}"));
                    return Ended(new TrainResult(true, step, _plan.MaxSteps, _state.Epoch, _lastCheckpoint, new Dictionary<string, double>(), _state.LogHistory.ToList()));
                }
            }
            return Finish();
        }

        private void StartPass()
        {
            if (_order.Length > 0) _pass++;
            _order = Enumerable.Range(0, _t._prompts.Count).ToArray();
            _dataOrder.Shuffle(_order);
            _nextBatch = 0;
        }

        /// <summary>What one global step reports: LLaMA-Factory's meters' inputs and TRL's statistics by name.</summary>
        private sealed record StepStats(double Loss, double Reward, double LearningRate, double? GradNorm, List<KeyValuePair<string, object?>> Trl);

        /// <summary>Rollout and scoring a mini-batch at a time, then TRL's step.</summary>
        private StepStats Step(IReadOnlyList<GenerationExample> prompts)
        {
            int mini = _t._args.PerDeviceTrainBatchSize, size = prompts.Count, step = _state.GlobalStep;
            var samples = new List<PpoSample>(size);
            var raw = new List<double>(size);
            for (int start = 0, chunk = 0; start < size; start += mini, chunk++)
            {
                var answered = _t._rollout(prompts.Skip(start).Take(mini).ToList(), GenerationSeed(step, chunk));
                samples.AddRange(answered);
                raw.AddRange(_t._score(answered));
            }
            for (int i = 0; i < samples.Count; i++)
                if (samples[i].Response.Length < 2)
                    throw new InvalidOperationException($"step {step + 1}: response {i} has {samples[i].Response.Length} token(s); TRL's PPO step needs at least 2 per response (\"Responses are too short\"): raise max_new_tokens or check the stop tokens");
            double[] scores = _t._settings.ScoreNorm ? _moments.Normalize([.. raw]) : [.. raw];

            // TRL's batched_forward_pass in mini-batches: the policy's log-probs and values, and the reference's log-probs.
            var logProbs = new double[size][];
            var values = new double[size][];
            var referenceLogProbs = new double[size][];
            var head = _t._policy.Head;
            for (int start = 0; start < size; start += mini)
            {
                var chunk = samples.Skip(start).Take(mini).ToList();
                var batch = Collate(chunk, _t._padTokenId);
                var forward = _t._policy.Decoder.LogProbs(batch);
                var tokenValues = new double[forward.Labels.Count];
                for (int i = 0; i < tokenValues.Length; i++)
                    tokenValues[i] = head.Score(forward.Hidden.AsSpan(forward.Labels.Rows[i] * head.HiddenSize, head.HiddenSize));
                PerSequence(forward.PerToken, forward.Labels).CopyTo(logProbs, start);
                PerSequence(tokenValues, forward.Labels).CopyTo(values, start);
                PerSequence(_t._reference.TokenLogProbs(batch), forward.Labels).CopyTo(referenceLogProbs, start);
            }
            double klCoefficient = _kl.Value;
            var (rewards, kls) = PpoMath.Rewards(scores, logProbs, referenceLogProbs, klCoefficient);
            var (advantages, returns) = PpoMath.Advantages(values, rewards, Gamma, Lambda, _t._settings.WhitenRewards);

            double learningRate = _t.Schedule.LearningRate(step);
            int accumulation = _t._args.GradientAccumulationSteps, backward = mini * accumulation;
            double? gradNorm = null;
            var minis = new List<(PpoPolicyLoss Policy, PpoValueLoss Value)>();
            for (int epoch = 0; epoch < _t._settings.Epochs; epoch++)
            {
                var order = Enumerable.Range(0, size).ToArray();
                _miniBatchOrder.Shuffle(order);
                for (int backwardStart = 0; backwardStart < size; backwardStart += backward)
                {
                    for (int start = backwardStart; start < backwardStart + backward; start += mini)
                    {
                        int[] picked = order[start..(start + mini)];
                        var policyLoss = new PpoPolicyLoss([.. picked.SelectMany(i => logProbs[i])], [.. picked.SelectMany(i => advantages[i])], ClipRange, RatioThreshold);
                        var valueLoss = new PpoValueLoss(head, policyLoss, [.. picked.SelectMany(i => values[i])], [.. picked.SelectMany(i => returns[i])],
                            ValueClipRange, ValueCoefficient, _dropout);
                        _t._policy.Decoder.ForwardBackward(Collate([.. picked.Select(i => samples[i])], _t._padTokenId), valueLoss, policyLoss, 1f / accumulation, _dropout);
                        minis.Add((policyLoss, valueLoss));
                    }
                    double norm = GradientClipping.Clip(_optimizer.Parameters, _t._args.MaxGradNorm);
                    gradNorm = _t._args.MaxGradNorm > 0 ? norm : null;
                    _optimizer.Update(learningRate);
                    foreach (var p in _optimizer.Parameters) p.ZeroGrad();
                }
            }

            // record_step_stats, before the KL controller moves.
            double meanKl = kls.Average(row => row.Sum());
            double meanScore = scores.Average();
            double total = minis.Average(m => m.Policy.Loss + ValueCoefficient * m.Value.Loss);
            var trl = new List<KeyValuePair<string, object?>>
            {
                new("objective/kl", meanKl),
                new("objective/kl_coef", klCoefficient),
                new("objective/entropy", logProbs.Average(row => -row.Sum())),
                new("ppo/mean_non_score_reward", PpoMath.Mean(kls) * -klCoefficient),
                new("ppo/mean_scores", meanScore),
                new("ppo/std_scores", size > 1 ? Math.Sqrt(scores.Sum(s => (s - meanScore) * (s - meanScore)) / (size - 1)) : double.NaN),
                new("ppo/loss/policy", minis.Average(m => m.Policy.Loss)),
                new("ppo/loss/value", minis.Average(m => m.Value.Loss)),
                new("ppo/loss/total", total),
                new("ppo/policy/approxkl", minis.Average(m => m.Policy.ApproxKl)),
                new("ppo/policy/policykl", minis.Average(m => m.Policy.PolicyKl)),
                new("ppo/policy/clipfrac", minis.Average(m => m.Policy.ClipFraction)),
                new("ppo/val/vpred", minis.Average(m => m.Value.MeanPrediction)),
                new("ppo/val/clipfrac", minis.Average(m => m.Value.ClipFraction)),
            };
            _kl.Update(meanKl, size);
            return new StepStats(total, raw.Average(), learningRate, gradNorm, trl);
        }

        /// <summary>A seed per rollout call, so a resumed run samples what the uninterrupted one did; rows draw seed + row.</summary>
        private int GenerationSeed(int step, int chunk) =>
            unchecked(_t._args.Seed + (step * (_t.StepBatchSize / _t._args.PerDeviceTrainBatchSize) + chunk + 1) * _t._args.PerDeviceTrainBatchSize);

        private void Log(StepStats last)
        {
            var values = new List<KeyValuePair<string, object?>>
            {
                new("loss", PythonJson.Round(_lossSum / _lossCount, 4)),
                new("reward", PythonJson.Round(_rewardSum / _rewardCount, 4)),
                new("learning_rate", last.LearningRate),
            };
            values.AddRange(last.Trl);
            values.Add(new("epoch", PythonJson.Round(_state.Epoch, 2)));
            values.Add(new("step", _state.GlobalStep));
            _lossSum = _lossCount = _rewardSum = _rewardCount = 0;
            _lastLoggedStep = _state.GlobalStep;
            var entry = new LogEntry(values);
            _state.LogHistory.Add(entry);
            _events.On(new HistoryLogged(entry, _state.GlobalStep, _plan.MaxSteps, 0,
                new RunSegment(_state.GlobalStep - _stepsAtStart, 0, _clock.Elapsed)));
            _events.On(new StepLogged(Snapshot(entry.TryGetDouble("loss"), last.GradNorm, last.LearningRate), entry));
        }

        private void SaveCheckpoint()
        {
            var resume = new ResumeState
            {
                GlobalStep = _state.GlobalStep,
                Epoch = _pass,
                NextBatch = _nextBatch,
                EpochEndHandled = false,
                MicroBatchesSeen = 0,
                HasAccumulatedGradients = false,
                StepLoss = 0,
                Order = _order,
                DropoutRandom = _dropout.State,
                DataOrderRandom = _dataOrder.State,
                PendingLoss = 0,
                StoredMetrics = [],
                LastLoggedStep = _lastLoggedStep,
                TotalLoss = 0,
                TokensSeen = 0,
                SchedulerType = _t.Schedule.Type,
                SchedulerTotalSteps = _t.Schedule.TotalSteps,
                SchedulerWarmupSteps = _t.Schedule.WarmupSteps,
                TrainExamples = _plan.TrainExamples,
                BatchSize = _t.StepBatchSize,
                GradientAccumulationSteps = _plan.GradientAccumulationSteps,
            };
            _lastCheckpoint = _checkpoints.Save(_state.GlobalStep, dir =>
            {
                TrainingCheckpoint.Write(dir, _t._policy, _optimizer, resume, _state);
                AtomicFile.WriteText(Path.Combine(dir, StateFileName), StateJson());
            }, _events);
            _lastSavedStep = _state.GlobalStep;
        }

        /// <summary>The PPO state beside <see cref="ResumeState"/>; doubles by their bit patterns, so they come back exactly.</summary>
        private string StateJson() => PythonJson.Dumps(new List<KeyValuePair<string, object?>>
        {
            new("kl_coef_bits", Bits(_kl.Value)),
            new("score_mean_bits", Bits(_moments.Mean)),
            new("score_var_bits", Bits(_moments.Variance)),
            new("score_std_bits", Bits(_moments.Std)),
            new("score_count_bits", Bits(_moments.Count)),
            new("loss_meter_bits", new List<object?> { Bits(_lossSum), Bits(_lossCount) }),
            new("reward_meter_bits", new List<object?> { Bits(_rewardSum), Bits(_rewardCount) }),
            new("mini_batch_rng_state", _miniBatchOrder.State.Cast<object?>().ToList()),
        }, indent: 2) + "\n";

        private static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

        private void RestoreFrom(string dir)
        {
            string statePath = Path.Combine(dir, StateFileName);
            if (!File.Exists(statePath))
                throw new InvalidDataException($"checkpoint {dir} has no {StateFileName}: it was not saved by stage ppo, so the KL coefficient and score moments it needs are missing");
            var (resume, saved) = TrainingCheckpoint.Restore(dir, _t._policy, _optimizer);
            if (resume.TrainExamples != _plan.TrainExamples || resume.BatchSize != _t.StepBatchSize)
                throw new ArgumentException($"checkpoint {dir} was trained on {resume.TrainExamples} prompts in PPO batches of {resume.BatchSize}; this run has {_plan.TrainExamples} in batches of {_t.StepBatchSize}, so its data position does not apply");
            if (resume.Order.Length != _plan.TrainExamples || !resume.Order.Order().SequenceEqual(Enumerable.Range(0, _plan.TrainExamples)))
                throw new InvalidDataException($"checkpoint {dir}: the saved prompt order is not a permutation of the {_plan.TrainExamples} prompts");
            if (resume.NextBatch is < 0 || resume.NextBatch > _plan.BatchesPerEpoch)
                throw new InvalidDataException($"checkpoint {dir}: batch position {resume.NextBatch} is outside the pass's {_plan.BatchesPerEpoch} batches");

            var fields = PythonJson.Parse(File.ReadAllText(statePath)) as List<KeyValuePair<string, object?>>
                ?? throw new InvalidDataException($"{statePath}: expected a JSON object");
            var map = fields.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            object? Field(string key) => map.TryGetValue(key, out object? v) ? v : throw new InvalidDataException($"{statePath}: '{key}' is missing");
            double Double(object? v, string key) => v is long bits ? BitConverter.Int64BitsToDouble(bits) : throw new InvalidDataException($"{statePath}: '{key}' is not an integer bit pattern");
            double[] Pair(string key) => Field(key) is List<object?> { Count: 2 } pair
                ? [Double(pair[0], key), Double(pair[1], key)]
                : throw new InvalidDataException($"{statePath}: '{key}' is not a pair of bit patterns");
            _kl.Value = Double(Field("kl_coef_bits"), "kl_coef_bits");
            _moments.Mean = Double(Field("score_mean_bits"), "score_mean_bits");
            _moments.Variance = Double(Field("score_var_bits"), "score_var_bits");
            _moments.Std = Double(Field("score_std_bits"), "score_std_bits");
            _moments.Count = Double(Field("score_count_bits"), "score_count_bits");
            (_lossSum, _lossCount) = Pair("loss_meter_bits") is [var ls, var lc] ? (ls, lc) : default;
            (_rewardSum, _rewardCount) = Pair("reward_meter_bits") is [var rs, var rc] ? (rs, rc) : default;
            _miniBatchOrder = SeededRandom.FromState(Field("mini_batch_rng_state") is List<object?> words
                ? [.. words.Select(w => w is long l ? unchecked((ulong)l) : throw new InvalidDataException($"{statePath}: 'mini_batch_rng_state' holds a non-integer"))]
                : throw new InvalidDataException($"{statePath}: 'mini_batch_rng_state' is not a list"));

            _state.GlobalStep = resume.GlobalStep;
            _state.Epoch = saved.Epoch;
            _state.LogHistory.AddRange(saved.LogHistory);
            _dropout = SeededRandom.FromState(resume.DropoutRandom);
            _dataOrder = SeededRandom.FromState(resume.DataOrderRandom);
            _pass = resume.Epoch;
            _nextBatch = resume.NextBatch;
            _order = resume.Order;
            _lastLoggedStep = resume.LastLoggedStep;
            _lastSavedStep = resume.GlobalStep;
            _lastCheckpoint = dir;
            _events.On(new TrainerNote($"resumed from {dir} at step {resume.GlobalStep}/{_plan.MaxSteps}"));
        }

        private TrainResult Finish()
        {
            _t._policy.Save(_outputDir);
            _checkpoints.RemoveSuperseded(_lastCheckpoint, _events);
            _events.On(new FinalStateReported(_state.Snapshot()));
            _events.On(new TrainerNote($"training finished: {_state.GlobalStep} steps, {_clock.Elapsed.TotalSeconds:0.0} s; saved to {_outputDir}"));
            return Ended(new TrainResult(false, _state.GlobalStep, _plan.MaxSteps, _state.Epoch, _lastCheckpoint, new Dictionary<string, double>(), _state.LogHistory.ToList()));
        }

        private TrainResult Ended(TrainResult result)
        {
            _events.On(new TrainingEnded(result));
            return result;
        }


        private ProgressSnapshot Snapshot(double? loss, double? gradNorm, double learningRate)
        {
            double elapsed = _clock.Elapsed.TotalSeconds;
            int stepsThisRun = _state.GlobalStep - _stepsAtStart;
            double remaining = stepsThisRun > 0 ? elapsed / stepsThisRun * (_plan.MaxSteps - _state.GlobalStep) : 0;
            return new ProgressSnapshot(_state.GlobalStep, _plan.MaxSteps, loss, learningRate, gradNorm, _state.Epoch, 0,
                TimeSpan.FromSeconds(elapsed), TimeSpan.FromSeconds(remaining));
        }
    }
}
