using System.Text.Json;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data.Cleaning;

/// <summary>How a dataset's format was found: from its dataset_info.json entry, or guessed from the records' fields.</summary>
/// <param name="Name">alpaca, sharegpt or openai (sharegpt with OpenAI's messages/role/content tags).</param>
/// <param name="Evidence">Why: the registry entry, or how many records carry the format's fields.</param>
public sealed record DetectedFormat(string Name, DatasetEntry Entry, string Evidence);

/// <summary>What one record measures. Token counts are null without a tokenizer or when the record cannot be encoded.</summary>
public sealed record RecordMeasure(int PromptChars, int AnswerChars, string Language,
    int? PromptTokens, int? TrainedTokens, int? TokensLost, int? TrainedTokensLost, string? Problem)
{
    public int Chars => PromptChars + AnswerChars;
    public int? Tokens => PromptTokens + TrainedTokens;
}

/// <summary>Records of a column (or of a message part) that lack it or hold an empty value.</summary>
public sealed record FieldCounts(string Field, int Missing, int Empty);

/// <summary>The tokenizer and template to count tokens with, and the cutoff_len whose cuts are reported.</summary>
public sealed record TokenCounting(Tokenizer Tokenizer, ChatTemplate Template, int CutoffLen);

/// <summary>Everything `sharptune data inspect` reports about a dataset.</summary>
public sealed record DatasetInspection(string Source, DetectedFormat Format, IReadOnlyList<RecordMeasure> Records,
    IReadOnlyList<FieldCounts> Fields, int ExactDuplicates, IReadOnlyList<string> Problems, TokenCounting? Tokens);

/// <summary>
/// `sharptune data inspect`: reads a dataset file (or a dataset_info.json entry's files) through
/// <see cref="DatasetRecordFile"/>, converts each record as training does (<see cref="DatasetConverter"/>) and, with a
/// tokenizer, encodes it with <see cref="SupervisedProcessor"/> twice: without a length limit (prompt tokens are the
/// labels −100, trained tokens the rest) and at cutoff_len (what a cut loses). Exact duplicates are counted by
/// <see cref="Deduplicator.ExactKey"/> over <see cref="RecordText"/>, as `data dedup` finds them.
/// </summary>
public static class DatasetInspector
{
    /// <summary>Problems listed in full; the rest are only counted.</summary>
    public const int MaxProblemsListed = 10;

    /// <summary>Inspects one file, its format detected from the records' fields.</summary>
    /// <exception cref="InvalidDataException">The file cannot be read, or no record has the fields of a known format.</exception>
    public static DatasetInspection InspectFile(string path, TokenCounting? tokens)
    {
        var file = DatasetRecordFile.Read(path);
        var format = Detect(file);
        return Inspect(path, format, [file], tokens);
    }

    /// <summary>Inspects a dataset registered in <paramref name="datasetDir"/>'s dataset_info.json, read as training reads it.</summary>
    public static DatasetInspection InspectRegistered(string datasetDir, string name, TokenCounting? tokens)
    {
        var registry = DatasetRegistry.Load(datasetDir);
        var entry = registry.Get(name);
        entry.RequireUsableBy("sft");
        entry.RequireAnswers();
        var files = DatasetFiles.Resolve(registry, entry).Select(f => DatasetRecordFile.Read(f.Path)).ToList();
        var format = new DetectedFormat(entry.Formatting == DatasetFormatting.Alpaca ? "alpaca" : "sharegpt", entry,
            $"from {Path.Combine(datasetDir, DatasetRegistry.FileName)}");
        return Inspect(name, format, files, tokens);
    }

    /// <summary>
    /// The format whose fields most records carry: alpaca (instruction and output strings), sharegpt (a
    /// conversations list of from/value messages) or OpenAI messages (a messages list of role/content messages).
    /// Optional columns (system, history, tools) are mapped when any record has them. A given
    /// <paramref name="format"/> (alpaca, sharegpt or openai) is taken when any record carries its fields.
    /// </summary>
    public static DetectedFormat Detect(DatasetRecordFile file, string? format = null) => Detect(file.Path, file.Records, format);

    /// <summary>As <see cref="Detect(DatasetRecordFile, string?)"/>, over records read one by one (a streamed file).</summary>
    public static DetectedFormat Detect(string path, IEnumerable<DatasetRecord> records, string? format = null)
    {
        int alpaca = 0, sharegpt = 0, openai = 0, total = 0;
        bool system = false, history = false, tools = false;
        foreach (var record in records)
        {
            total++;
            using var doc = record.Parse();
            var r = doc.RootElement;
            if (IsString(r, "instruction") && IsString(r, "output")) alpaca++;
            if (IsMessageList(r, "conversations", "from", "value")) sharegpt++;
            if (IsMessageList(r, "messages", "role", "content")) openai++;
            system |= r.TryGetProperty("system", out _);
            history |= r.TryGetProperty("history", out _);
            tools |= r.TryGetProperty("tools", out _);
        }
        if (total == 0) throw new InvalidDataException($"{path}: holds no records");
        int best = format switch
        {
            null => Math.Max(alpaca, Math.Max(sharegpt, openai)),
            "alpaca" => alpaca,
            "sharegpt" => sharegpt,
            "openai" => openai,
            _ => throw new ArgumentException($"format {SharpTune.IO.MessageText.Quote(format)} is not alpaca, sharegpt or openai"),
        };
        if (best == 0 && format is not null)
            throw new InvalidDataException($"{path}: no record has the fields of the {format} format ({FormatFields[format]})");
        if (best == 0)
            throw new InvalidDataException($"{path}: no record has the fields of a known format (alpaca: instruction and output; sharegpt: conversations of from/value; OpenAI: messages of role/content); inspect it as a registered dataset (--dataset-dir) whose dataset_info.json maps its columns");
        string sure = best == total ? "all" : $"{best} of {total}";
        string? systemColumn = system ? "system" : null, toolsColumn = tools ? "tools" : null;
        var name = Path.GetFileName(path);
        if (format is null ? best == alpaca : format == "alpaca")
            return new DetectedFormat("alpaca", new DatasetEntry { Name = name, FileName = path, System = systemColumn, History = history ? "history" : null, Tools = toolsColumn },
                $"{sure} records have instruction and output");
        if (format is null ? best == sharegpt : format == "sharegpt")
            return new DetectedFormat("sharegpt", new DatasetEntry { Name = name, FileName = path, Formatting = DatasetFormatting.Sharegpt, System = systemColumn, Tools = toolsColumn },
                $"{sure} records have conversations of from/value messages");
        return new DetectedFormat("openai", new DatasetEntry
        {
            Name = name, FileName = path, Formatting = DatasetFormatting.Sharegpt, Messages = "messages", System = systemColumn, Tools = toolsColumn,
            RoleTag = "role", ContentTag = "content", UserTag = "user", AssistantTag = "assistant", SystemTag = "system", ObservationTag = "tool",
        }, $"{sure} records have messages of role/content");
    }

    private static readonly Dictionary<string, string> FormatFields = new()
    {
        ["alpaca"] = "instruction and output", ["sharegpt"] = "conversations of from/value messages", ["openai"] = "messages of role/content",
    };

    private static DatasetInspection Inspect(string source, DetectedFormat format, IReadOnlyList<DatasetRecordFile> files, TokenCounting? tokens)
    {
        var entry = format.Entry;
        SupervisedProcessor? whole = null, cut = null;
        if (tokens is not null)
        {
            whole = WholeRecordProcessor(tokens.Tokenizer, tokens.Template);
            cut = SupervisedProcessor.ForData(tokens.Tokenizer, tokens.Template, new DataArguments { CutoffLen = tokens.CutoffLen });
        }
        var records = files.SelectMany(f => f.Records).ToList();
        var measures = new RecordMeasure[records.Count];
        var keys = new UInt128[records.Count];
        var text = new RecordText(null);
        Parallel.For(0, records.Count, i =>
        {
            using var doc = records[i].Parse();
            string all = text.Of(doc.RootElement);
            keys[i] = Deduplicator.ExactKey(RecordText.Normalize(all));
            measures[i] = Measure(entry, doc.RootElement, all, whole, cut);
        });

        var seen = new HashSet<UInt128>();
        int duplicates = keys.Count(k => !seen.Add(k));
        var problems = records.Zip(measures).Where(p => p.Second.Problem is not null)
            .Select(p => $"{p.First.Location}: {p.Second.Problem}").ToList();
        return new DatasetInspection(source, format, measures, CountFields(entry, records), duplicates, problems, tokens);
    }

    /// <summary>Encodes a record as training does but without a length limit: every prompt and trained token it has.</summary>
    public static SupervisedProcessor WholeRecordProcessor(Tokenizer tokenizer, ChatTemplate template) =>
        SupervisedProcessor.ForData(tokenizer, template, new DataArguments { CutoffLen = int.MaxValue });

    /// <param name="allText">Every string of the record (<see cref="RecordText"/>): the language of a record that cannot be converted.</param>
    private static RecordMeasure Measure(DatasetEntry entry, JsonElement record, string allText, SupervisedProcessor? whole, SupervisedProcessor? cut)
    {
        AlignedExample example;
        try
        {
            example = DatasetConverter.Convert(entry, record);
        }
        catch (InvalidRecordException e)
        {
            return new RecordMeasure(0, 0, Language(allText), null, null, null, null, e.Message);
        }
        // The language of what is said: the system prompt and messages, not tool schemas or function-call JSON.
        string language = Language(string.Join("\n", example.Messages.Select(m => m.Content).Prepend(example.System ?? "")));
        int answerChars = example.Messages.Where(m => m.Role == ChatRole.Assistant).Sum(m => m.Content.Length);
        int promptChars = example.Messages.Where(m => m.Role != ChatRole.Assistant).Sum(m => m.Content.Length) + (example.System?.Length ?? 0);
        if (whole is null || cut is null) return new RecordMeasure(promptChars, answerChars, language, null, null, null, null, null);
        try
        {
            var full = whole.Encode(example);
            var kept = cut.Encode(example);
            int prompt = full.Labels.Count(l => l == SupervisedCollator.IgnoreIndex), trained = full.Labels.Length - prompt;
            int keptTrained = kept.Labels.Count(l => l != SupervisedCollator.IgnoreIndex);
            return new RecordMeasure(promptChars, answerChars, language, prompt, trained, full.InputIds.Length - kept.InputIds.Length, trained - keptTrained, null);
        }
        catch (InvalidRecordException e)
        {
            return new RecordMeasure(promptChars, answerChars, language, null, null, null, null, e.Message);
        }
    }

    /// <summary>Missing and empty values of the columns the entry maps; for sharegpt also messages whose content is empty.</summary>
    private static List<FieldCounts> CountFields(DatasetEntry entry, List<DatasetRecord> records)
    {
        string?[] columns = entry.Formatting == DatasetFormatting.Alpaca
            ? [entry.Prompt, entry.Query, entry.Response, entry.History, entry.System, entry.Tools]
            : [entry.Messages, entry.System, entry.Tools];
        var names = columns.OfType<string>().ToList();
        var missing = new int[names.Count];
        var empty = new int[names.Count];
        int emptyContent = 0;
        foreach (var record in records)
        {
            using var doc = record.Parse();
            for (int c = 0; c < names.Count; c++)
            {
                if (!doc.RootElement.TryGetProperty(names[c], out var value) || value.ValueKind == JsonValueKind.Null) missing[c]++;
                else if (value.ValueKind == JsonValueKind.String && value.GetString()!.Length == 0
                         || value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 0) empty[c]++;
            }
            if (entry.Formatting == DatasetFormatting.Sharegpt
                && doc.RootElement.TryGetProperty(entry.Messages!, out var messages) && messages.ValueKind == JsonValueKind.Array
                && messages.EnumerateArray().Any(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty(entry.ContentTag!, out var content)
                                                    && content.ValueKind == JsonValueKind.String && content.GetString()!.Length == 0))
                emptyContent++;
        }
        var counts = names.Select((n, c) => new FieldCounts(n, missing[c], empty[c])).ToList();
        if (entry.Formatting == DatasetFormatting.Sharegpt)
            counts.Add(new FieldCounts($"{entry.Messages}[].{entry.ContentTag}", 0, emptyContent));
        return counts;
    }

    private const int CjkWeight = 3;

    public const string Cjk = "CJK", Latin = "Latin", OtherScript = "other script", NoLetters = "no letters";

    /// <summary>
    /// A cheap language guess by script: the script most of the record's letters belong to (CJK: Han, kana, Hangul;
    /// Latin; any other), or "no letters". A CJK character counts as three letters, about how much longer an English
    /// text is than its Chinese translation, so a Chinese answer with a few English terms stays CJK (one that is
    /// mostly code counts as Latin). It tells Chinese from English data, not English from French.
    /// </summary>
    public static string Language(string text)
    {
        int cjk = 0, latin = 0, other = 0;
        foreach (char c in text)
        {
            if (c is >= '\u4E00' and <= '\u9FFF' or >= '\u3400' and <= '\u4DBF' or >= '\u3040' and <= '\u30FF' or >= '\uAC00' and <= '\uD7AF') cjk++;
            else if (!char.IsLetter(c)) continue;
            else if (c <= '\u024F') latin++;
            else other++;
        }
        if (cjk + latin + other == 0) return NoLetters;
        return CjkWeight * cjk >= latin && CjkWeight * cjk >= other ? Cjk : latin >= other ? Latin : OtherScript;
    }

    private static bool IsString(JsonElement record, string key) =>
        record.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String;

    private static bool IsMessageList(JsonElement record, string key, string role, string content) =>
        record.TryGetProperty(key, out var list) && list.ValueKind == JsonValueKind.Array && list.GetArrayLength() > 0
        && list.EnumerateArray().All(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty(role, out _) && m.TryGetProperty(content, out _));
}
