using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// Dataset preparation for continued pretraining (stage pt), in LLaMA-Factory's order: each dataset's records are
/// read (<c>num_samples</c>, <c>max_samples</c>, strict or lenient, as for supervised data) and turned into their
/// text (<see cref="DatasetConverter.ConvertPlainText"/>), the datasets are concatenated, the texts become examples
/// (<see cref="PretrainProcessor"/>), then <c>val_size</c> splits off an eval set unless <c>eval_dataset</c> gives one.
/// </summary>
public static class PretrainDatasets
{
    /// <param name="template">The template: its fixed eos token ends every text.</param>
    /// <param name="tokenizerDir">The folder whose tokenizer_config.json names the pad token and whether a bos token is added.</param>
    public static PreparedData Load(DataArguments args, Tokenizer tokenizer, ChatTemplate template, string tokenizerDir, int seed)
    {
        var trainNames = SupervisedDatasets.SplitNames(args.Dataset);
        var evalNames = SupervisedDatasets.SplitNames(args.EvalDataset);
        if (trainNames.Count == 0 && evalNames.Count == 0)
            throw new ArgumentException("dataset: no dataset given (name one or more datasets from dataset_info.json, comma-separated)");

        var processor = ForModel(args, tokenizer, template, tokenizerDir);
        var registry = DatasetRegistry.Load(args.DatasetDir, args.ConfineDatasetFilesTo);
        var report = new DataReport();
        var train = processor.Process(LoadTexts(registry, trainNames, "train", args, seed, report));
        var eval = processor.Process(LoadTexts(registry, evalNames, "eval", args, seed, report));
        if (trainNames.Count > 0 && train.Count == 0)
            throw new InvalidDataException(
                $"dataset {string.Join(", ", trainNames)}: not enough text for one block of cutoff_len {args.CutoffLen} tokens (packing drops each group's last partial block); use more text or a smaller cutoff_len");
        if (args.ValSize > 1e-6)
            (train, eval) = SupervisedDatasets.SplitOff(train, args.ValSize, seed);
        report.Packed = args.Packing;
        report.TrainExamples = train.Count;
        report.EvalExamples = eval.Count;
        return new PreparedData(train, eval, report);
    }

    /// <summary>
    /// The processor LLaMA-Factory would build: texts end with the template-fixed eos (<c>&lt;|end_of_text|&gt;</c>
    /// for the llama3 template, as its pretrain processor hard-codes), the pad token masks labels (the eos when the
    /// tokenizer names no pad token), and a bos token is added when tokenizer_config.json sets add_bos_token.
    /// </summary>
    public static PretrainProcessor ForModel(DataArguments args, Tokenizer tokenizer, ChatTemplate template, string tokenizerDir)
    {
        string eos = template.Name == "llama3" ? "<|end_of_text|>" : template.EosToken ?? "<|endoftext|>";
        string pad = TokenizerConfig.PadToken(tokenizerDir) ?? eos;
        int padId = tokenizer.TokenToId(pad) ?? throw new ArgumentException($"the pad token '{pad}' is not a token of the tokenizer");
        return new PretrainProcessor(tokenizer, eos, TokenizerConfig.AddedBosToken(tokenizerDir), args.CutoffLen, args.Packing, padId, args.PreprocessingBatchSize);
    }

    private static List<string> LoadTexts(DatasetRegistry registry, List<string> names, string split, DataArguments args, int seed, DataReport report) =>
        SupervisedDatasets.LoadAll(registry, names, split, PlainTextRecords, aligned => aligned.Messages[0].Content, args, seed, report);

    private static Func<JsonElement, AlignedExample> PlainTextRecords(DatasetEntry entry)
    {
        entry.RequireUsableBy("pt");
        return record => DatasetConverter.ConvertPlainText(entry, record);
    }
}
