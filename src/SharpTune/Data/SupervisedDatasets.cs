using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>A stage's data: tokenized train and eval examples and the report of how they were made.</summary>
public record PreparedData<T>(IReadOnlyList<T> Train, IReadOnlyList<T> Eval, DataReport Report);

/// <summary>The data of stages sft and pt.</summary>
public sealed record PreparedData(IReadOnlyList<SupervisedExample> Train, IReadOnlyList<SupervisedExample> Eval, DataReport Report)
    : PreparedData<SupervisedExample>(Train, Eval, Report);

/// <summary>
/// Dataset preparation for supervised fine-tuning, in LLaMA-Factory's order: each registered dataset is read
/// (<c>num_samples</c>, then <c>max_samples</c> = its first N records), converted and tokenized; the datasets are
/// concatenated in the order given; optionally packed; then <c>val_size</c> splits off an eval set, unless
/// <c>eval_dataset</c> gives one.
/// </summary>
public static class SupervisedDatasets
{
    /// <summary>Reads, converts and tokenizes the datasets named by <paramref name="args"/>.</summary>
    /// <param name="template">The chat template (by name or detected); <c>default_system</c>/<c>tool_format</c> are applied here.</param>
    /// <param name="seed">Seed of the <c>val_size</c> split and of <c>num_samples</c> draws.</param>
    /// <exception cref="InvalidDataException">
    /// A malformed file or record: "file: record N: reason" (JSON Lines: "file: line N: reason"). In strict mode (the
    /// default) the first malformed record stops loading; with <see cref="DataArguments.SkipInvalidRecords"/> they are
    /// skipped and counted in the report.
    /// </exception>
    public static PreparedData Load(DataArguments args, Tokenizer tokenizer, ChatTemplate template, int seed)
    {
        var processor = SupervisedProcessor.ForData(tokenizer, template, args);
        Func<List<SupervisedExample>, List<SupervisedExample>> assemble = args.Packing ? examples => SequencePacker.Pack(examples, args.CutoffLen, args.NeatPacking) : examples => examples;
        var (train, eval, report) = Prepare(args, SupervisedRecords, processor.Encode, assemble, seed);
        report.Packed = args.Packing;
        return new PreparedData(train, eval, report);
    }

    /// <summary>
    /// The steps of every stage's data, in LLaMA-Factory's order: the named train and eval datasets are read and each
    /// record converted (<paramref name="converterFor"/> gives an entry's converter, and may refuse the entry) and
    /// encoded; each split's examples, concatenated in the order given, become the split's examples by
    /// <paramref name="assemble"/> (packing, KTO's KL pairs); then <c>val_size</c> splits off an eval set.
    /// </summary>
    internal static PreparedData<T> Prepare<TRecord, TEncoded, T>(DataArguments args, Func<DatasetEntry, Func<JsonElement, TRecord>> converterFor,
        Func<TRecord, TEncoded> encode, Func<List<TEncoded>, List<T>> assemble, int seed) where TRecord : class where TEncoded : class
    {
        var trainNames = SplitNames(args.Dataset);
        var evalNames = SplitNames(args.EvalDataset);
        if (trainNames.Count == 0 && evalNames.Count == 0)
            throw new ArgumentException("dataset: no dataset given (name one or more datasets from dataset_info.json, comma-separated)");
        if (args.ValSize < 0 || double.IsNaN(args.ValSize))
            throw new ArgumentException($"val_size must be a fraction in (0, 1) or a number of examples, got {args.ValSize}");
        if (args.MaxSamples is <= 0)
            throw new ArgumentException($"max_samples must be positive, got {args.MaxSamples}");

        var registry = DatasetRegistry.Load(args.DatasetDir, args.ConfineDatasetFilesTo);
        var report = new DataReport();
        var train = assemble(LoadAll(registry, trainNames, "train", converterFor, encode, args, seed, report));
        var eval = assemble(LoadAll(registry, evalNames, "eval", converterFor, encode, args, seed, report));
        if (trainNames.Count > 0 && train.Count == 0)
            throw new InvalidDataException($"dataset {string.Join(", ", trainNames)}: no usable examples (all {report.SkippedRecords} records were malformed)");
        if (args.ValSize > 1e-6)
            (train, eval) = SplitOff(train, args.ValSize, seed);

        report.TrainExamples = train.Count;
        report.EvalExamples = eval.Count;
        return new PreparedData<T>(train, eval, report);
    }

    /// <summary>
    /// The examples of a prediction run: <c>eval_dataset</c> read like <see cref="Load"/> reads it (max_samples,
    /// num_samples, strict or lenient records), each record turned into a prompt and its reference answer by
    /// <see cref="SupervisedProcessor.EncodeForGeneration"/>, as LLaMA-Factory prepares the eval set when
    /// predict_with_generate is on.
    /// </summary>
    public static (IReadOnlyList<GenerationExample> Examples, DataReport Report) LoadForGeneration(DataArguments args, Tokenizer tokenizer, ChatTemplate template, int seed)
    {
        var names = SplitNames(args.EvalDataset);
        if (names.Count == 0)
            throw new ArgumentException("eval_dataset: no dataset given (name one or more datasets from dataset_info.json, comma-separated)");
        if (args.MaxSamples is <= 0)
            throw new ArgumentException($"max_samples must be positive, got {args.MaxSamples}");
        var processor = SupervisedProcessor.ForData(tokenizer, template, args);
        var report = new DataReport();
        var examples = LoadAll(DatasetRegistry.Load(args.DatasetDir, args.ConfineDatasetFilesTo), names, "eval", SupervisedRecords, processor.EncodeForGeneration, args, seed, report);
        if (examples.Count == 0)
            throw new InvalidDataException($"eval_dataset {string.Join(", ", names)}: no usable examples (all {report.SkippedRecords} records were malformed)");
        report.EvalExamples = examples.Count;
        return (examples, report);
    }

    /// <summary>
    /// Hugging Face's <c>train_test_split(test_size, seed)</c> as LLaMA-Factory calls it: a fraction takes
    /// ceil(fraction × n) examples, a number ≥ 1 that many (its integer part); the held-out examples are the first
    /// ones of a seeded permutation and the training examples the rest, in permutation order. The permutation comes
    /// from <see cref="SeededRandom"/>, not numpy, so the same seed picks other examples than LLaMA-Factory would.
    /// </summary>
    public static (List<T> Train, List<T> Eval) SplitOff<T>(IReadOnlyList<T> examples, double valSize, int seed)
    {
        int n = examples.Count;
        int evalCount = valSize < 1 ? (int)Math.Ceiling(valSize * n) : (int)valSize;
        if (evalCount <= 0 || evalCount >= n)
            throw new ArgumentException($"val_size {valSize} would hold out {evalCount} of {n} examples; it must leave at least one example for each of train and eval");
        var order = Enumerable.Range(0, n).ToArray();
        new SeededRandom(unchecked((ulong)seed)).Shuffle(order);
        return (order[evalCount..].Select(i => examples[i]).ToList(), order[..evalCount].Select(i => examples[i]).ToList());
    }

    internal static List<string> SplitNames(IEnumerable<string> names) =>
        names.SelectMany(n => n.Split(',')).Select(n => n.Trim()).Where(n => n.Length > 0).ToList();

    /// <summary>The record converter of the supervised stages, for an entry that has answers.</summary>
    private static Func<JsonElement, AlignedExample> SupervisedRecords(DatasetEntry entry)
    {
        entry.RequireUsableBy("sft");
        entry.RequireAnswers();
        return record => DatasetConverter.Convert(entry, record);
    }

    /// <summary>
    /// The named datasets, concatenated in order: each entry's records converted by the converter
    /// <paramref name="converterFor"/> gives for that entry (which may refuse the entry), then encoded.
    /// </summary>
    internal static List<T> LoadAll<TRecord, T>(DatasetRegistry registry, List<string> names, string split,
        Func<DatasetEntry, Func<JsonElement, TRecord>> converterFor, Func<TRecord, T> encode,
        DataArguments args, int seed, DataReport report) where TRecord : class where T : class
    {
        var all = new List<T>();
        foreach (string name in names)
        {
            var entry = registry.Get(name);
            all.AddRange(LoadOne(registry, entry, split, converterFor(entry), encode, args, seed, report));
        }
        return all;
    }

    /// <summary>One record on its way to an example: converted, or the reason it cannot be.</summary>
    private sealed class Item<TRecord, T>(string location) where TRecord : class where T : class
    {
        public string Location { get; } = location;
        public TRecord? Aligned { get; set; }
        public T? Example { get; set; }
        public string? Problem { get; set; }
    }

    private static List<T> LoadOne<TRecord, T>(DatasetRegistry registry, DatasetEntry entry, string split,
        Func<JsonElement, TRecord> convert, Func<TRecord, T> encode, DataArguments args, int seed, DataReport report) where TRecord : class where T : class
    {
        // max_samples keeps the first N records, so without num_samples the rest need not be converted at all.
        int limit = entry.NumSamples is null && args.MaxSamples is int max ? max : int.MaxValue;
        // Strict mode stops reading at the first record that cannot be converted; the records before it are still
        // encoded below, since one of them may fail to encode and is then the first bad record.
        bool strict = !args.SkipInvalidRecords && entry.NumSamples is null;
        var items = new List<Item<TRecord, T>>();
        foreach (var (path, display) in DatasetFiles.Resolve(registry, entry))
        {
            foreach (var raw in DatasetFiles.Read(path, display))
            {
                if (items.Count >= limit) break;
                var item = new Item<TRecord, T>(raw.Location) { Problem = raw.Problem };
                try
                {
                    if (raw.Problem is null)
                        item.Aligned = convert(raw.Value);
                }
                catch (InvalidRecordException e)
                {
                    item.Problem = e.Message;
                }
                items.Add(item);
                if (strict && item.Problem is not null) break;
            }
            if (strict && items.Count > 0 && items[^1].Problem is not null) break;
        }
        if (items.Count == 0)
            throw new InvalidDataException($"dataset '{entry.Name}' ({entry.Origin}) holds no records");

        if (entry.NumSamples is int numSamples)
            items = DrawSamples(items, numSamples, seed);
        if (args.MaxSamples is int maxSamples && items.Count > maxSamples)
            items = items.GetRange(0, maxSamples);

        Parallel.ForEach(items, item =>
        {
            if (item.Aligned is null) return;
            try
            {
                item.Example = encode(item.Aligned);
                item.Aligned = null;
            }
            catch (InvalidRecordException e)
            {
                item.Problem = e.Message;
            }
        });

        var skipped = items.Where(i => i.Problem is not null).Select(i => $"{i.Location}: {i.Problem}").ToList();
        if (skipped.Count > 0 && !args.SkipInvalidRecords)
            throw new InvalidDataException(skipped[0]);
        var examples = items.Where(i => i.Example is not null).Select(i => i.Example!).ToList();
        report.Add(new DatasetSummary(entry.Name, split, items.Count, examples.Count, skipped.Count), skipped);
        return examples;
    }

    /// <summary>
    /// LLaMA-Factory's <c>num_samples</c>: a random selection without repeats, topped up with random repeats when
    /// more samples are asked for than there are records (seeded here rather than by numpy's global generator).
    /// </summary>
    private static List<TItem> DrawSamples<TItem>(List<TItem> items, int count, int seed)
    {
        var random = new SeededRandom(unchecked((ulong)seed));
        var order = Enumerable.Range(0, items.Count).ToArray();
        random.Shuffle(order);
        var picked = order.Take(count).Select(i => items[i]).ToList();
        while (picked.Count < count)
            picked.Add(items[random.NextInt(items.Count)]);
        return picked;
    }
}
