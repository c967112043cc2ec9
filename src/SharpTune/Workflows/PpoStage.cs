using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Evaluation.Prediction;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Ppo;
using SharpTune.Training.Preference;
using SharpTune.Training.Reward;

using SharpTune.Distributed;

namespace SharpTune.Workflows;

/// <summary>
/// Stage ppo, LLaMA-Factory's run_ppo: the memory pre-flight, tokenizer and template, the prompts, the policy (the
/// method's model with a value head: value_head.safetensors of the last adapter or the model folder when there is
/// one, else a new head), the reference (the policy with its adapter disabled, as TRL's step takes it for an adapter;
/// ref_model or the starting weights for full and freeze tuning), the reward source of reward_model_type, then
/// <see cref="PpoTrainer"/>. The result is the method's usual files plus value_head.safetensors, and the loss and
/// reward plots.
/// </summary>
public sealed class PpoStage : ITrainingStage
{
    public static PpoStage Instance { get; } = new();

    /// <summary>How long the reward API may take for one mini-batch; LLaMA-Factory's requests.post waits without limit.</summary>
    private static readonly TimeSpan RewardApiTimeout = TimeSpan.FromMinutes(10);

    public WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer)
    {
        // PPO's own loop (rollouts, then epochs of mini-batches) does not average gradients over ranks as the trainer does.
        if (ProcessGroup.Current is { Size: > 1 } world)
            throw new NotSupportedException($"stage ppo trains in one process, but mpirun started {world.Size}: data-parallel training covers stages sft, pt, rm, dpo and kto; run ppo without mpirun");
        var (cfg, tokenizer, template, estimatedPeak) = FineTuningStage.Begin(request, ref observer);
        void Note(string text) => observer.On(new RunNote(text));
        var f = cfg.Finetuning;
        string modelDir = cfg.Model.ModelNameOrPath;
        if (f.IsPromptLearning)
            throw new NotSupportedException($"stage ppo trains lora, freeze, full and the adapter methods that wrap Linears; finetuning_type {f.MethodName} (prompt learning) is not available for it (LLaMA-Factory's PPO takes lora, freeze or full)");
        var data = PreferenceDatasets.LoadPrompts(cfg.Data, tokenizer, template, cfg.Training.Seed);
        foreach (string line in data.Report.ToString().Split('\n')) Note(line);
        if (data.Train.Count == 0) throw new InvalidDataException("the training set is empty: no dataset record produced a prompt");

        int padId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        // The eos LLaMA-Factory's tokenizer has after the template fixed it: get_inputs keeps it when it is the pad token.
        string eosText = template.EosToken ?? TokenizerConfig.EosToken(modelDir)
            ?? throw new InvalidDataException($"{modelDir}: the tokenizer names no eos_token and the template binds none; PPO's responses end at it");
        int eosId = tokenizer.TokenToId(eosText) ?? throw new InvalidDataException($"{modelDir}: the eos token {eosText} is not in the vocabulary");
        var options = new GenerationOptions { StopTokenIds = PredictionRun.StopTokenIds(tokenizer, template, modelDir) }.With(cfg.Generating);
        var started = Stopwatch.StartNew();
        var inner = FineTuningStage.CreateModel(cfg, Note);
        RewardModel policy;
        try
        {
            var head = RewardModel.StartingHead(modelDir, cfg.Model.AdapterNameOrPath, inner.Decoder!.Config.HiddenSize,
                new SeededRandom((ulong)cfg.Training.Seed ^ RewardModelStage.ValueHeadStream));
            policy = new RewardModel(inner, head);
        }
        catch
        {
            inner.Dispose();
            throw;
        }
        using (policy)
        {
            var decoder = policy.Decoder;
            using var reference = CreateReference(cfg, decoder, Note);
            using var rewards = RewardSource.Create(cfg, decoder, tokenizer, Note);
            int mini = cfg.Training.PerDeviceTrainBatchSize;
            var trainer = new PpoTrainer(policy, reference, cfg.Training, PpoSettings.From(f), data.Train,
                (prompts, seed) => PpoRollout.Generate(decoder, prompts, options with { Seed = seed }, padId, eosId),
                samples => rewards.Score(samples, mini), padId, observer);
            Note($"PPO: {trainer.StepBatchSize} prompts per step (per_device_train_batch_size {mini} × gradient_accumulation_steps {cfg.Training.GradientAccumulationSteps} × ppo_buffer_size {f.PpoBufferSize}), ppo_epochs {f.PpoEpochs}, {trainer.Plan.MaxSteps} steps");
            return FineTuningStage.Train(cfg, policy, trainer.Plan, trainer.Train, data.Train.Count, started, estimatedPeak, cancellation, observer, ["reward"]);
        }
    }

    /// <summary>
    /// TRL's step takes the reference log-probs from the policy with its adapter disabled whenever the policy is a PEFT
    /// model, ref_model or not; full and freeze tuning get ref_model or a frozen copy of the starting weights.
    /// </summary>
    private static ReferenceModel CreateReference(SftConfig cfg, DecoderModel policy, Action<string> note)
    {
        if (!policy.Linears.Any(l => l.Tuners.Count > 0)) return PreferenceStage<GenerationExample>.CreateReference(cfg, policy, note);
        if (cfg.Finetuning.RefModel is { } folder)
            note($"note: ref_model {folder} is not used: TRL's PPO step takes the reference log-probs from the policy with its adapter disabled");
        note("reference model: the policy with its adapter disabled (no second copy of the weights)");
        return ReferenceModel.TunersDisabled(policy);
    }

    /// <summary>The scores of reward_model_type: one of the three sources, and what it holds.</summary>
    private sealed class RewardSource(Func<IReadOnlyList<PpoSample>, int, double[]> score, IDisposable? owned) : IDisposable
    {
        public double[] Score(IReadOnlyList<PpoSample> samples, int batchSize) => score(samples, batchSize);

        public void Dispose() => owned?.Dispose();

        public static RewardSource Create(SftConfig cfg, DecoderModel policy, Tokenizer tokenizer, Action<string> note)
        {
            var f = cfg.Finetuning;
            string source = f.RewardModel!;
            switch (f.RewardModelType)
            {
                case "api":
                    if (!Uri.TryCreate(source, UriKind.Absolute, out var url))
                        throw new ArgumentException($"reward_model: '{source}' is not a URL; reward_model_type api posts to one (LLaMA-Factory: \"Please provide full url.\")");
                    var api = new ApiRewardModel(url, tokenizer, RewardApiTimeout);
                    note($"reward model: the API at {url}");
                    // The step in progress finishes on Ctrl+C, so its scores are asked for without the run's cancellation.
                    return new RewardSource((samples, _) => api.Score([.. samples.Select(s => s.Query)], [.. samples.Select(s => s.Response)], CancellationToken.None), api);
                case "full":
                    var quantization = f.RewardModelQuantizationBit is { } bits ? new QuantizationOptions(bits, cfg.Model.QuantizationType, cfg.Model.DoubleQuantization) : null;
                    var full = FullRewardModel.Load(source, f.RewardModelAdapters, quantization);
                    if (full.Decoder.Config.VocabSize != policy.Config.VocabSize)
                    {
                        full.Dispose();
                        throw new ArgumentException($"reward_model: {source} has a vocabulary of {full.Decoder.Config.VocabSize} tokens, the model trained {policy.Config.VocabSize}; it must score the same token ids");
                    }
                    note($"reward model: {source}{(f.RewardModelAdapters.Count > 0 ? $" with {string.Join(", ", f.RewardModelAdapters)}" : "")}{(quantization is null ? "" : $", quantized on load: {quantization}")}, for evaluation only");
                    return new RewardSource(full.Score, full);
                default:
                    var lora = LoraRewardModel.Load(policy, source);
                    note($"reward model: the adapter {source} swapped in for the policy's on the same base weights, with its value head");
                    return new RewardSource(lora.Score, null);
            }
        }
    }
}
