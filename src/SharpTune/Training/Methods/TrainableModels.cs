using System.Globalization;
using SharpTune.Hparams;
using SharpTune.Peft.Lora;
using SharpTune.Training.Model;

namespace SharpTune.Training.Methods;

/// <summary>Builds the model a fine-tuning method trains, as LLaMA-Factory's init_adapter sets it up.</summary>
public static class TrainableModels
{
    /// <summary>
    /// full: every parameter; freeze: LLaMA-Factory's layer/module selection; lora: new adapters, or with adapter
    /// folders, every folder but the last merged into the base and the last one's training continued.
    /// </summary>
    public static ITrainableModel Create(string modelDirectory, FinetuningArguments args, bool gradientCheckpointing,
        SeededRandom initRandom, IReadOnlyList<string> adapterDirectories)
    {
        if (args.FinetuningType != FinetuningType.Lora && adapterDirectories.Count > 0)
            throw new ArgumentException($"adapter_name_or_path is only used with finetuning_type lora, not {args.FinetuningType.ToString().ToLowerInvariant()}");
        var decoder = TrainableDecoder.Load(modelDirectory, gradientCheckpointing);
        switch (args.FinetuningType)
        {
            case FinetuningType.Full:
                return WeightsFineTuning.Full(decoder);
            case FinetuningType.Freeze:
                return WeightsFineTuning.Freeze(decoder, args);
            default:
                if (adapterDirectories.Count == 0) return LoraFineTuning.CreateNew(decoder, args, initRandom);
                for (int i = 0; i < adapterDirectories.Count - 1; i++) LoraFineTuning.MergeInto(decoder, adapterDirectories[i]);
                return LoraFineTuning.Resume(decoder, adapterDirectories[^1]);
        }
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
