using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// Dataset preparation for the alignment stages, as LLaMA-Factory's loader prepares them (same reading, max_samples,
/// num_samples, strict or lenient records, concatenation and val_size split as <see cref="SupervisedDatasets"/>):
/// rm and dpo read preference pairs (its pairwise processor), kto tagged answers with their KL examples (its
/// feedback processor), ppo prompts (its unsupervised processor). Each stage reads only the datasets LLaMA-Factory
/// lets it read (<see cref="DatasetEntry.RequireUsableBy"/>).
/// </summary>
public static class PreferenceDatasets
{
    /// <summary>Stages rm and dpo: each record of a ranking dataset becomes a <see cref="PairwiseExample"/> (<see cref="SupervisedProcessor.EncodePair"/>).</summary>
    /// <param name="stage">rm or dpo, the stage whose datasets these are (for messages).</param>
    /// <exception cref="InvalidDataException">A dataset the stage cannot use, or a malformed file or record ("file: record N: reason").</exception>
    public static PreparedData<PairwiseExample> LoadPairwise(DataArguments args, Tokenizer tokenizer, ChatTemplate template, string stage, int seed)
    {
        if (stage is not ("rm" or "dpo")) throw new ArgumentException($"stage {stage} does not read preference pairs (rm and dpo do)");
        var processor = ForStage(args, tokenizer, template, stage);
        return SupervisedDatasets.Prepare(args, Records(stage, DatasetConverter.ConvertPairwise), processor.EncodePair, Unchanged, seed);
    }

    /// <summary>
    /// Stage kto: each record of a dataset with a kto_tag column becomes a <see cref="KtoExample"/>, its KL example
    /// built from the record before it in each group of <c>preprocessing_batch_size</c> (<see cref="SupervisedProcessor.KtoExamples"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">A dataset the stage cannot use, or a malformed file or record.</exception>
    public static PreparedData<KtoExample> LoadFeedback(DataArguments args, Tokenizer tokenizer, ChatTemplate template, int seed)
    {
        var processor = ForStage(args, tokenizer, template, "kto");
        return SupervisedDatasets.Prepare(args, Records("kto", DatasetConverter.ConvertFeedback), processor.EncodeFeedback,
            records => processor.KtoExamples(records, args.PreprocessingBatchSize), seed);
    }

    /// <summary>
    /// Stage ppo: each record becomes the prompt the policy answers (<see cref="GenerationExample.PromptIds"/>; the
    /// label holds the record's own answer, or nothing), as <see cref="SupervisedProcessor.EncodeForGeneration"/>
    /// encodes it.
    /// </summary>
    /// <exception cref="InvalidDataException">A dataset the stage cannot use, or a malformed file or record.</exception>
    public static PreparedData<GenerationExample> LoadPrompts(DataArguments args, Tokenizer tokenizer, ChatTemplate template, int seed)
    {
        var processor = ForStage(args, tokenizer, template, "ppo");
        return SupervisedDatasets.Prepare(args, Records("ppo", DatasetConverter.ConvertPrompt), processor.EncodeForGeneration, Unchanged, seed);
    }

    /// <summary>
    /// The processor of an alignment stage. LLaMA-Factory's parser allows train_on_prompt and mask_history for sft
    /// only, and its processors for these stages never pack, so all three are refused (the config refuses them at
    /// their line; this is for arguments built in code).
    /// </summary>
    private static SupervisedProcessor ForStage(DataArguments args, Tokenizer tokenizer, ChatTemplate template, string stage)
    {
        foreach (var (key, set) in new[] { ("train_on_prompt", args.TrainOnPrompt), ("mask_history", args.MaskHistory) })
            if (set) throw new ArgumentException($"{key}: applies to stage sft only, not stage {stage}");
        if (args.Packing) throw new ArgumentException($"packing: applies to stages sft and pt only, not stage {stage}");
        return SupervisedProcessor.ForData(tokenizer, template, args);
    }

    private static Func<DatasetEntry, Func<JsonElement, T>> Records<T>(string stage, Func<DatasetEntry, JsonElement, T> convert) => entry =>
    {
        entry.RequireUsableBy(stage);
        return record => convert(entry, record);
    };

    private static List<T> Unchanged<T>(List<T> examples) => examples;
}
