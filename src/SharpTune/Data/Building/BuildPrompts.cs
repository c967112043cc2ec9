using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpTune.Data.Cleaning;

namespace SharpTune.Data.Building;

/// <summary>
/// The prompts <c>sharptune data build</c> sends the teacher, in English and Chinese. Each is a template with
/// <c>{name}</c> placeholders, filled in one pass (so text inserted for one placeholder is never searched for
/// another). A prompts file (JSON: <c>{"en": {"questions": "...", ...}, "zh": {...}}</c>) replaces any of them;
/// <see cref="DefaultsJson"/> is the starting point for one.
/// </summary>
public sealed partial class BuildPrompts
{
    public const string Questions = "questions", Answer = "answer", Paraphrase = "paraphrase",
        SelfInstruct = "self_instruct", NotAnswerable = "not_answerable";

    public static readonly string[] Languages = ["en", "zh"];

    /// <summary>Each prompt and the placeholders it must contain (<see cref="NotAnswerable"/> is the reply the answer prompt asks for when the passage lacks the answer).</summary>
    private static readonly Dictionary<string, string[]> Required = new()
    {
        [Questions] = ["{text}", "{n}"],
        [Answer] = ["{text}", "{question}"],
        [Paraphrase] = ["{question}", "{n}"],
        [SelfInstruct] = ["{tasks}", "{n}"],
        [NotAnswerable] = [],
    };

    private static readonly Dictionary<string, Dictionary<string, string>> Defaults = new()
    {
        ["en"] = new()
        {
            [Questions] = "Below is a passage from a document (section: {headings}). Write {n} different questions that a reader "
                + "could ask and that the passage itself answers. Each question must be understandable without seeing the passage. "
                + "Reply with a numbered list, one question per line, and nothing else.\n\nPassage:\n\"\"\"\n{text}\n\"\"\"",
            [Answer] = "Answer the question using only the passage below: do not add facts it does not state. If the passage "
                + "does not contain the answer, reply exactly: {not_answerable}. Answer directly, without mentioning the passage.\n\n"
                + "Section: {headings}\nPassage:\n\"\"\"\n{text}\n\"\"\"\n\nQuestion: {question}",
            [Paraphrase] = "Rewrite the question below in {n} different ways that keep its meaning exactly. Reply with a "
                + "numbered list, one question per line, and nothing else.\n\nQuestion: {question}",
            [SelfInstruct] = "Come up with a series of tasks:\n{tasks}\nContinue the list with {n} new tasks that differ from "
                + "those above, numbered on from there, one per line, and nothing else.",
            [NotAnswerable] = "NOT IN PASSAGE",
        },
        ["zh"] = new()
        {
            [Questions] = "下面是一份文档中的一段文字（章节：{headings}）。请提出{n}个不同的问题，这些问题读者可能会问，并且答案就在这段文字中。"
                + "每个问题在不看这段文字时也要能读懂。请用编号列表回答，每行一个问题，不要写其他内容。\n\n文字：\n\"\"\"\n{text}\n\"\"\"",
            [Answer] = "请只根据下面这段文字回答问题，不要添加文字中没有的内容。如果文字中没有答案，请只回答：{not_answerable}。"
                + "直接回答，不要提到“这段文字”。\n\n章节：{headings}\n文字：\n\"\"\"\n{text}\n\"\"\"\n\n问题：{question}",
            [Paraphrase] = "请用{n}种不同的说法改写下面的问题，意思保持完全不变。请用编号列表回答，每行一个问题，不要写其他内容。\n\n问题：{question}",
            [SelfInstruct] = "请想出一系列任务：\n{tasks}\n请接着上面的编号再写{n}个与上面不同的新任务，每行一个，不要写其他内容。",
            [NotAnswerable] = "原文未提及",
        },
    };

    private readonly Dictionary<string, Dictionary<string, string>> prompts;

    private BuildPrompts(Dictionary<string, Dictionary<string, string>> prompts) => this.prompts = prompts;

    /// <summary>The built-in prompts, with those of <paramref name="path"/> (if given) in their place.</summary>
    /// <exception cref="InvalidDataException">The file is not such JSON, or names an unknown language or prompt, or a prompt lacks a placeholder it needs: the message names the file, language and prompt.</exception>
    public static BuildPrompts Load(string? path)
    {
        var prompts = Defaults.ToDictionary(l => l.Key, l => new Dictionary<string, string>(l.Value));
        if (path is null) return new BuildPrompts(prompts);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: expected a JSON object {{\"en\": {{...}}, \"zh\": {{...}}}}");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}");
        }
        foreach (var (language, value) in root)
        {
            if (!prompts.TryGetValue(language, out var ofLanguage))
                throw new InvalidDataException($"{path}: unknown language \"{language}\"; expected {string.Join(" or ", Languages)}");
            if (value is not JsonObject entries) throw new InvalidDataException($"{path}: \"{language}\" must be an object of prompts");
            foreach (var (name, text) in entries)
            {
                if (!Required.TryGetValue(name, out var placeholders))
                    throw new InvalidDataException($"{path}: {language}.{name}: unknown prompt; expected one of {string.Join(", ", Required.Keys)}");
                if (text is not JsonValue v || !v.TryGetValue(out string? s) || s.Trim().Length == 0)
                    throw new InvalidDataException($"{path}: {language}.{name}: expected a non-empty string");
                if (placeholders.FirstOrDefault(p => !s.Contains(p, StringComparison.Ordinal)) is { } missing)
                    throw new InvalidDataException($"{path}: {language}.{name}: the prompt must contain {missing}");
                ofLanguage[name] = s;
            }
        }
        return new BuildPrompts(prompts);
    }

    /// <summary>The built-in prompts as a prompts file holds them.</summary>
    public static string DefaultsJson() => JsonSerializer.Serialize(Defaults, new JsonSerializerOptions
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>The prompt language of a text: Chinese when most of its letters are CJK (by <see cref="DatasetInspector.Language"/>), else English.</summary>
    public static string Detect(string text) => DatasetInspector.Language(text) == DatasetInspector.Cjk ? "zh" : "en";

    /// <summary>The reply the answer prompt asks for when the passage does not hold the answer.</summary>
    public string NotAnswerableReply(string language) => prompts[language][NotAnswerable];

    /// <summary>Prompt <paramref name="name"/> in <paramref name="language"/> with its placeholders filled.</summary>
    public string Fill(string language, string name, IReadOnlyDictionary<string, string> values) =>
        Placeholder().Replace(prompts[language][name], m =>
        {
            string key = m.Groups[1].Value;
            if (key == NotAnswerable) return prompts[language][NotAnswerable];
            return values.TryGetValue(key, out var value) ? value : m.Value;
        });

    [GeneratedRegex(@"\{([a-z_]+)\}")]
    private static partial Regex Placeholder();
}
