using System.Diagnostics;
using SharpTune.Data;
using SharpTune.FineTuning.Memory;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Preference;
using SharpTune.Training.Trainer;
using SharpTune.Reporting;

namespace SharpTune.Workflows;

/// <summary>
/// Stages dpo and kto, LLaMA-Factory's run_dpo and run_kto: the memory pre-flight, tokenizer and template, the
/// preference data, the trainable model of finetuning_type, the reference model, then do_train (the generic trainer
/// with the stage's step; the result is an ordinary adapter or model folder) or do_eval alone. The reference is
/// ref_model (+ ref_model_adapters, ref_model_quantization_bit) loaded for evaluation only, else the policy with its
/// tuners disabled (LoRA), else a frozen copy of the starting weights (full, freeze); orpo and simpo have none.
/// </summary>
public sealed class PreferenceStage<TExample> : ITrainingStage
{
    private readonly Func<SftConfig, Tokenizer, ChatTemplate, PreparedData<TExample>> _loadData;
    private readonly Func<SftConfig, DecoderModel, ReferenceModel?, int, ITrainingStep<TExample>> _createStep;
    private readonly Func<FinetuningArguments, bool> _needsReference;
    private readonly string _plottedMetric;

    internal PreferenceStage(Func<SftConfig, Tokenizer, ChatTemplate, PreparedData<TExample>> loadData,
        Func<SftConfig, DecoderModel, ReferenceModel?, int, ITrainingStep<TExample>> createStep, Func<FinetuningArguments, bool> needsReference,
        string plottedMetric)
    {
        _loadData = loadData;
        _createStep = createStep;
        _needsReference = needsReference;
        _plottedMetric = plottedMetric;
    }

    public WorkflowResult Run(TrainingRequest request, CancellationToken cancellation, IRunObserver observer)
    {
        var (cfg, tokenizer, template, estimatedPeak) = FineTuningStage.Begin(request, ref observer);
        string stage = cfg.Finetuning.Stage;
        void Note(string text) => observer.On(new RunNote(text));
        string modelDir = cfg.Model.ModelNameOrPath;
        var data = _loadData(cfg, tokenizer, template);
        foreach (string line in data.Report.ToString().Split('\n')) Note(line);
        if (cfg.Training.DoTrain && data.Train.Count == 0) throw new InvalidDataException("the training set is empty: no dataset record produced an example");

        int padId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        var started = Stopwatch.StartNew();
        using var model = FineTuningStage.CreateModel(cfg, Note);
        var policy = model.Decoder ?? throw new InvalidOperationException($"stage {stage} trains a decoder model");
        using var reference = _needsReference(cfg.Finetuning) ? CreateReference(cfg, policy, Note) : null;
        var step = _createStep(cfg, policy, reference, padId);

        if (!cfg.Training.DoTrain) return FineTuningStage.Evaluate(cfg, step, data.Eval, observer);
        var trainer = new Trainer<TExample>(model, cfg.Training, data.Train, data.Eval.Count > 0 ? data.Eval : null, step, observer);
        return FineTuningStage.Train(cfg, model, trainer, data.Train.Count, started, estimatedPeak, cancellation, observer, [_plottedMetric]);
    }

    /// <summary>The reference model (see the class summary), with a note of what it is and what it costs.</summary>
    internal static ReferenceModel CreateReference(SftConfig cfg, DecoderModel policy, Action<string> note)
    {
        var f = cfg.Finetuning;
        if (f.RefModel is not { } folder)
        {
            var own = ReferenceModel.ForPolicy(policy, () => DecoderModel.Load(cfg.Model.ModelNameOrPath, gradientCheckpointing: true, bf16Compute: cfg.Training.Bf16));
            note(own.ExtraBytes == 0
                ? "reference model: the policy with its adapter disabled (no second copy of the weights)"
                : $"reference model: a frozen copy of the starting weights, {MemoryEstimator.FormatBytes(own.ExtraBytes)} besides the trained ones");
            return own;
        }
        var quantization = f.RefModelQuantizationBit is { } bits ? new QuantizationOptions(bits, cfg.Model.QuantizationType, cfg.Model.DoubleQuantization) : null;
        var model = DecoderModel.Load(folder, gradientCheckpointing: true, quantization, cfg.Training.Bf16);
        try
        {
            if (model.Config.VocabSize != policy.Config.VocabSize)
                throw new ArgumentException($"ref_model: {folder} has a vocabulary of {model.Config.VocabSize} tokens, the model trained {policy.Config.VocabSize}; the reference must score the same token ids");
            foreach (string adapter in f.RefModelAdapters) model.LoadAdapter(adapter);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        var reference = ReferenceModel.Separate(model);
        note($"reference model: {folder}{(f.RefModelAdapters.Count > 0 ? $" with {string.Join(", ", f.RefModelAdapters)}" : "")}"
            + $"{(quantization is null ? "" : $", quantized on load: {quantization}")}, for evaluation only ({MemoryEstimator.FormatBytes(reference.ExtraBytes)})");
        return reference;
    }
}

/// <summary>The preference stages' entries in <see cref="TrainingWorkflow.Stages"/>.</summary>
public static class PreferenceStages
{
    /// <summary>dpo: pref_loss over ranking pairs; LLaMA-Factory plots rewards/accuracies beside the losses.</summary>
    public static ITrainingStage Dpo { get; } = new PreferenceStage<PairwiseExample>(
        (cfg, tokenizer, template) => PreferenceDatasets.LoadPairwise(cfg.Data, tokenizer, template, "dpo", cfg.Training.Seed),
        (cfg, policy, reference, padId) => new PairwiseTrainingStep(
            new PairwiseStep(policy, reference, PairLoss(cfg.Finetuning), cfg.Finetuning.PrefFtx), new PairwiseBatches(padId)),
        f => PairLoss(f).NeedsReference,
        "rewards/accuracies");

    /// <summary>kto: tagged answers against their KL batch; LLaMA-Factory plots rewards/chosen beside the losses.</summary>
    public static ITrainingStage Kto { get; } = new PreferenceStage<KtoExample>(
        (cfg, tokenizer, template) => PreferenceDatasets.LoadFeedback(cfg.Data, tokenizer, template, cfg.Training.Seed),
        (cfg, policy, reference, padId) => new KtoTrainingStep(
            new KtoStep(policy, reference!, cfg.Finetuning.PrefBeta, cfg.Finetuning.KtoChosenWeight, cfg.Finetuning.KtoRejectedWeight, cfg.Finetuning.PrefFtx),
            new KtoBatches(padId)),
        _ => true,
        "rewards/chosen");

    /// <summary>pref_loss with its settings (the config refuses pref_bco_weight).</summary>
    private static PairLoss PairLoss(FinetuningArguments f) =>
        Training.Preference.PairLoss.Create(f.PrefLoss, f.PrefBeta, f.DpoLabelSmoothing, f.SimpoGamma);
}
