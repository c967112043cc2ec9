using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Evaluation.Comparison;

/// <summary>One prompt a comparison puts to every model: the question as shown, its prompt ids and, when known, the expected answer.</summary>
/// <param name="Question">The user message the models answer.</param>
/// <param name="PromptIds">The rendered conversation up to the generation prompt, as chat and training render it.</param>
/// <param name="Reference">The reference answer (from the dataset or the questions file), or null.</param>
public sealed record ComparisonQuestion(string Question, int[] PromptIds, string? Reference);

/// <summary>
/// Where a comparison's questions come from. A questions file is encoded the way <c>chat</c> encodes a message
/// (<see cref="ChatTemplate.EncodePrompt"/>); dataset records the way a prediction run encodes them
/// (<see cref="SupervisedDatasets.LoadForGeneration"/>, which is the training processor), so history, system and tools
/// of a record reach the prompt as they did in training.
/// </summary>
public static class ComparisonQuestions
{
    /// <summary>
    /// Reads a questions file: plain text holds one question per non-blank line; <c>.json</c> (an array) and
    /// <c>.jsonl</c> (one object per line) hold objects with a <c>question</c> string and optional <c>reference</c>
    /// and <c>system</c> strings. <paramref name="system"/> is the system prompt of questions that name none (null: the
    /// template's default).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is missing, empty, or a record is malformed (file, line or record, and field named).</exception>
    public static IReadOnlyList<ComparisonQuestion> FromFile(string path, Tokenizer tokenizer, ChatTemplate template, string? system)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"questions file {path} does not exist");
        var entries = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".jsonl" => ReadJsonLines(path),
            ".json" => ReadJsonArray(path),
            _ => ReadPlainText(path),
        };
        if (entries.Count == 0) throw new InvalidDataException($"{path}: holds no questions");
        return entries.Select(e =>
        {
            var messages = new List<ChatMessage>();
            if ((e.System ?? system) is string s) messages.Add(new ChatMessage(ChatRole.System, s));
            messages.Add(new ChatMessage(ChatRole.User, e.Question));
            return new ComparisonQuestion(e.Question, template.EncodePrompt(tokenizer, messages), e.Reference);
        }).ToList();
    }

    /// <summary>
    /// The first <c>max_samples</c> records of each named dataset (in <paramref name="data"/>'s dataset_dir), as a
    /// prediction run reads <c>eval_dataset</c>; each record's answer is the reference.
    /// </summary>
    public static IReadOnlyList<ComparisonQuestion> FromDatasets(DataArguments data, Tokenizer tokenizer, ChatTemplate template, int seed)
    {
        var (examples, _) = SupervisedDatasets.LoadForGeneration(data, tokenizer, template, seed);
        return examples.Select(e => new ComparisonQuestion(e.Question, e.PromptIds, tokenizer.Decode(e.LabelIds, skipSpecialTokens: true))).ToList();
    }

    private sealed record Entry(string Question, string? Reference, string? System);

    private static List<Entry> ReadPlainText(string path) =>
        File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).Select(l => new Entry(l, null, null)).ToList();

    private static List<Entry> ReadJsonLines(string path)
    {
        var entries = new List<Entry>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            string where = $"{path}: line {lineNumber}";
            using var doc = Parse(line, where);
            entries.Add(ReadEntry(doc.RootElement, where));
        }
        return entries;
    }

    private static List<Entry> ReadJsonArray(string path)
    {
        using var doc = Parse(File.ReadAllText(path), path);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{path}: expected a JSON array of {{\"question\": ...}} objects");
        return doc.RootElement.EnumerateArray().Select((e, i) => ReadEntry(e, $"{path}: record {i}")).ToList();
    }

    private static JsonDocument Parse(string json, string where)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: not valid JSON ({e.Message})");
        }
    }

    private static Entry ReadEntry(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: expected an object with a \"question\" string");
        string question = OptionalString(e, "question", where)
            ?? throw new InvalidDataException($"{where}: field \"question\" is missing");
        if (question.Trim().Length == 0) throw new InvalidDataException($"{where}: field \"question\" is empty");
        return new Entry(question, OptionalString(e, "reference", where), OptionalString(e, "system", where));
    }

    private static string? OptionalString(JsonElement e, string field, string where)
    {
        if (!e.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: field \"{field}\" must be a string, got {value.ValueKind.ToString().ToLowerInvariant()}");
        return value.GetString();
    }
}
