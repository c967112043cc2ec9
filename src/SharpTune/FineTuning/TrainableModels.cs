using System.Globalization;
using SharpTune.Hparams;
using SharpTune.Peft;
using SharpTune.Peft.BitFit;
using SharpTune.Peft.Bottleneck;
using SharpTune.Peft.Ia3;
using SharpTune.Peft.Lora;
using SharpTune.Peft.PromptLearning;
using SharpTune.Quantization;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.FineTuning;

/// <summary>Builds the model a fine-tuning method trains, as LLaMA-Factory's init_adapter sets it up.</summary>
public static class TrainableModels
{
    /// <summary>
    /// full: every parameter; freeze: LLaMA-Factory's layer/module selection; lora, ia3, bitfit, adapter and the prompt-learning
    /// methods: new adapters, or with adapter folders, every folder but the last (LoRA) merged into the base and the last
    /// one's training continued, whatever its peft_type (with create_new_adapter every folder merged and new adapters
    /// trained, unless the base is quantized: LLaMA-Factory then continues the single adapter, since nothing can be
    /// merged into quantized weights). Frozen weights
    /// stay as the checkpoint stores them; merging an earlier adapter turns just the modules it changes into fp32.
    /// With quantization the layers' projections are quantised (QLoRA): any method that leaves them frozen (not full or freeze), with at most one adapter folder,
    /// since quantised weights can neither be trained nor have an adapter folded into them. With bf16Compute the
    /// frozen bf16 weights are multiplied in bf16 where the machine has a bf16 GEMM (see <see cref="DecoderModel.Load"/>).
    /// </summary>
    /// <param name="hubId">The Hub id the model folder is a cached snapshot of, recorded in saved adapters; null for a plain folder.</param>
    public static ITrainableModel Create(string modelDirectory, FinetuningArguments args, bool gradientCheckpointing,
        SeededRandom initRandom, IReadOnlyList<string> adapterDirectories, QuantizationOptions? quantization = null, bool bf16Compute = false,
        string? hubId = null)
    {
        CheckCombination(args, adapterDirectories, quantization);
        var decoder = DecoderModel.Load(modelDirectory, gradientCheckpointing, quantization, bf16Compute);
        if (hubId is not null) decoder.BaseModelName = hubId;
        try
        {
            switch (args.FinetuningType)
            {
                case FinetuningType.Full:
                    return WeightsFineTuning.Full(decoder);
                case FinetuningType.Freeze:
                    return WeightsFineTuning.Freeze(decoder, args);
                case FinetuningType.PromptTuning or FinetuningType.PTuning or FinetuningType.PrefixTuning:
                    return adapterDirectories.Count == 0
                        ? PromptLearningFineTuning.CreateNew(decoder, args, initRandom, modelDirectory)
                        : PeftAdapterFolders.ResumeTraining(decoder, adapterDirectories[0]);
                default:
                    bool startNew = adapterDirectories.Count == 0 || args.CreateNewAdapter && quantization is null;
                    int merged = startNew ? adapterDirectories.Count : adapterDirectories.Count - 1;
                    for (int i = 0; i < merged; i++) LoraFineTuning.MergeInto(decoder, adapterDirectories[i]);
                    if (!startNew) return PeftAdapterFolders.ResumeTraining(decoder, adapterDirectories[^1]);
                    return args.FinetuningType switch
                    {
                        FinetuningType.Ia3 => Ia3FineTuning.CreateNew(decoder, args),
                        FinetuningType.BitFit => BitFitFineTuning.CreateNew(decoder, args),
                        FinetuningType.Adapter => BottleneckFineTuning.CreateNew(decoder, args, initRandom),
                        _ => LoraFineTuning.CreateNew(decoder, args, initRandom),
                    };
            }
        }
        catch
        {
            decoder.Dispose();
            throw;
        }
    }

    /// <summary>Refuses what <see cref="Create"/> cannot build: adapters with full or freeze, quantisation with a method that trains the projections, a quantized base under several adapters.</summary>
    public static void CheckCombination(FinetuningArguments args, IReadOnlyList<string> adapterDirectories, QuantizationOptions? quantization)
    {
        string method = args.MethodName;
        if (args.RefusedAdapters(adapterDirectories.Count) is { } adapters) throw new ArgumentException($"{adapters.Key}: {adapters.Problem}");
        if (quantization is not null && !args.LeavesBaseFrozen)
            throw new ArgumentException($"quantized weights cannot be trained, so finetuning_type {method} cannot use quantization_bit; use finetuning_type lora (QLoRA)");
        if (quantization is not null && args.EffectiveInitLoraWeights is { } init && adapterDirectories.Count == 0)
            throw new ArgumentException($"init_lora_weights {init} (pissa_init) cannot train on a quantized base: it takes the adapter from the base weight and leaves the residual as the base, which quantized weights cannot hold (LLaMA-Factory refuses PiSSA on quantized models too)");
        if (quantization is not null && adapterDirectories.Count > 1)
            throw new ArgumentException($"a quantized base takes a single adapter, got {adapterDirectories.Count}: an adapter cannot be merged into quantized weights; merge the earlier adapters into the base first (sharptune export)");
    }

    /// <summary>PEFT's print_trainable_parameters line.</summary>
    public static string Summary(ITrainableModel model)
    {
        long trainable = model.TrainableParameters.Sum(p => (long)p.Length);
        long total = model.TotalParameterCount;
        return string.Create(CultureInfo.InvariantCulture,
            $"trainable params: {trainable:N0} || all params: {total:N0} || trainable%: {100.0 * trainable / total:F4}");
    }
}
