using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.Tokenization;

namespace SharpTune.Data.Cleaning;

/// <summary>A rule of `sharptune data clean` that rewrites text; <see cref="Name"/> is its recipe key and report reason.</summary>
public interface ITextRewriteRule
{
    string Name { get; }

    /// <summary>Why the rule changes text, for the report.</summary>
    string Description { get; }

    /// <summary>The rewritten value of the string at <paramref name="field"/> (a path such as <c>conversations[1].value</c>), or null when unchanged.</summary>
    string? Rewrite(string field, string value);
}

/// <summary>A rule of `sharptune data clean` that removes records; <see cref="Name"/> is its recipe key and report reason.</summary>
public interface IRecordFilterRule
{
    string Name { get; }

    string Description { get; }

    /// <summary>
    /// Why the record must go, as what was measured or matched (the report's "measured"), or null to keep it.
    /// <paramref name="text"/> is the record's text as <see cref="RecordText"/> defines it.
    /// </summary>
    string? Reject(JsonElement record, string text);
}

/// <summary>Removes ANSI escape sequences and control characters (Unicode Cc) other than tab, line feed and carriage return.</summary>
public sealed partial class ControlCharactersRule : ITextRewriteRule
{
    public string Name => "control_characters";

    public string Description => "ANSI escape sequences and control characters other than \\t \\n \\r removed";

    public string? Rewrite(string field, string value)
    {
        bool any = false;
        foreach (char c in value)
            if (IsRemoved(c)) { any = true; break; }
        if (!any) return null;
        string text = AnsiEscape().Replace(value, "");
        var kept = new StringBuilder(text.Length);
        foreach (char c in text) if (!IsRemoved(c)) kept.Append(c);
        return kept.ToString();
    }

    private static bool IsRemoved(char c) => c < 0x20 ? c is not ('\t' or '\n' or '\r') : c is >= '\u007F' and <= '\u009F';

    [GeneratedRegex(@"\x1B(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")]
    private static partial Regex AnsiEscape();
}

/// <summary>Unicode normalisation to NFC or NFKC, with the project's own tables (string.Normalize is a no-op under invariant globalization).</summary>
public sealed class UnicodeNormalizationRule(string form) : ITextRewriteRule
{
    public string Form { get; } = form is "NFC" or "NFKC" ? form : throw new ArgumentException($"unicode_normalization form '{form}' is not NFC or NFKC");

    public string Name => "unicode_normalization";

    public string Description => $"Unicode {Form}";

    public string? Rewrite(string field, string value)
    {
        string normal = Form == "NFC" ? CanonicalComposition.Normalize(value) : CompatibilityComposition.Normalize(value);
        return string.Equals(normal, value, StringComparison.Ordinal) ? null : normal;
    }
}

/// <summary>
/// data-juicer's whitespace_normalization_mapper: every Unicode space other than the plain space, and the zero-width
/// spaces and U+FFFC, become a plain space, and the text is trimmed at both ends. Tabs and line breaks inside are kept.
/// </summary>
public sealed class WhitespaceRule : ITextRewriteRule
{
    public string Name => "whitespace";

    public string Description => "unusual spaces made plain spaces, text trimmed";

    public string? Rewrite(string field, string value)
    {
        bool any = false;
        foreach (char c in value)
            if (IsUnusualSpace(c)) { any = true; break; }
        string text = value;
        if (any)
        {
            var plain = new StringBuilder(value.Length);
            foreach (char c in value) plain.Append(IsUnusualSpace(c) ? ' ' : c);
            text = plain.ToString();
        }
        text = text.Trim();
        return string.Equals(text, value, StringComparison.Ordinal) ? null : text;
    }

    private static bool IsUnusualSpace(char c) =>
        c >= 0x80 && (c is '\u200B' or '\u200C' or '\u200D' or '\u2060' or '\uFEFF' or '\uFFFC' or '\u0085'
            || char.GetUnicodeCategory(c) == UnicodeCategory.SpaceSeparator);
}

/// <summary>data-juicer's punctuation_normalization_mapper: full-width and typographic punctuation mapped to ASCII.</summary>
public sealed class PunctuationRule : ITextRewriteRule
{
    private static readonly Dictionary<char, string> s_map = new()
    {
        ['，'] = ",", ['。'] = ".", ['、'] = ",", ['„'] = "\"", ['”'] = "\"", ['“'] = "\"", ['«'] = "\"", ['»'] = "\"",
        ['１'] = "\"", ['」'] = "\"", ['「'] = "\"", ['《'] = "\"", ['》'] = "\"", ['´'] = "'", ['∶'] = ":", ['：'] = ":",
        ['？'] = "?", ['！'] = "!", ['（'] = "(", ['）'] = ")", ['；'] = ";", ['–'] = "-", ['—'] = " - ", ['．'] = ". ",
        ['～'] = "~", ['’'] = "'", ['…'] = "...", ['━'] = "-", ['〈'] = "<", ['〉'] = ">", ['【'] = "[", ['】'] = "]",
        ['％'] = "%", ['►'] = "-",
    };

    public string Name => "punctuation";

    public string Description => "full-width and typographic punctuation made ASCII";

    public string? Rewrite(string field, string value)
    {
        if (value.AsSpan().IndexOfAny(s_mapped) < 0) return null;
        var text = new StringBuilder(value.Length + 8);
        foreach (char c in value) text.Append(s_map.TryGetValue(c, out string? ascii) ? ascii : c);
        return text.ToString();
    }

    private static readonly System.Buffers.SearchValues<char> s_mapped = System.Buffers.SearchValues.Create([.. s_map.Keys]);
}

/// <summary>
/// The many ways alpaca-style data says "no input" (Alpaca's <c>&lt;noinput&gt;</c>, "No input", "N/A", …) made the
/// empty string LLaMA-Factory and Alpaca-cleaned use, in the top-level <c>input</c> field.
/// </summary>
public sealed class EmptyInputMarkerRule : ITextRewriteRule
{
    /// <summary>Compared lower-cased, trimmed and without a final full stop.</summary>
    public static readonly IReadOnlySet<string> Markers = new HashSet<string>
    {
        "<noinput>", "<no input>", "noinput", "no input", "no input required", "no input needed", "no input provided",
        "none", "<none>", "(none)", "n/a", "na", "nan", "null", "nil", "empty", "<empty>", "not applicable", "-", "无", "无输入", "空",
    };

    public string Name => "empty_input_marker";

    public string Description => "empty-input marker in 'input' made the empty string";

    public string? Rewrite(string field, string value) =>
        field == "input" && value.Length > 0 && IsMarker(value) ? "" : null;

    public static bool IsMarker(string value)
    {
        string key = value.Trim().ToLowerInvariant();
        if (key.EndsWith('.') || key.EndsWith('。')) key = key[..^1].TrimEnd();
        return key.Length == 0 || Markers.Contains(key);
    }
}

/// <summary>
/// Drops records whose answer is empty or a placeholder ("N/A", <c>&lt;nooutput&gt;</c>, …): the top-level
/// <c>output</c> (alpaca), or the last message's <c>value</c>/<c>content</c> in <c>conversations</c>/<c>messages</c> (sharegpt).
/// </summary>
public sealed class EmptyOutputRule : IRecordFilterRule
{
    /// <summary>Compared lower-cased, trimmed and without a final full stop; "none" is not one, as it answers many questions.</summary>
    private static readonly HashSet<string> s_placeholders = ["<nooutput>", "<no output>", "no output", "nooutput", "n/a", "na", "nan", "null", "-"];

    public string Name => "empty_output";

    public string Description => "answer empty or a placeholder (N/A, <nooutput>, null, ...)";

    public string? Reject(JsonElement record, string text)
    {
        if (Answer(record) is not { } answer) return null;
        string key = answer.Trim().ToLowerInvariant();
        if (key.EndsWith('.')) key = key[..^1].TrimEnd();
        return key.Length == 0 || s_placeholders.Contains(key) ? JsonSerializer.Serialize(answer) : null;
    }

    private static string? Answer(JsonElement record)
    {
        if (record.TryGetProperty("output", out var output)) return output.ValueKind == JsonValueKind.String ? output.GetString() : null;
        foreach (string list in (string[])["conversations", "messages"])
            if (record.TryGetProperty(list, out var messages) && messages.ValueKind == JsonValueKind.Array && messages.GetArrayLength() > 0)
            {
                var last = messages[messages.GetArrayLength() - 1];
                if (last.ValueKind != JsonValueKind.Object) return null;
                foreach (string key in (string[])["value", "content"])
                    if (last.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String) return value.GetString();
            }
        return null;
    }
}

/// <summary>Drops records whose measure (of the record's text) lies outside [min, max], as data-juicer's ratio and length filters do.</summary>
public sealed class BoundsRule(string name, string measure, double min, double max, Func<string, double> measureText) : IRecordFilterRule
{
    public string Name => name;

    public double Min => min;

    public double Max => max;

    public string Description => $"{measure} outside [{Format(min)}, {Format(max)}]";

    public string? Reject(JsonElement record, string text)
    {
        double value = measureText(text);
        return value < min || value > max ? Format(value) : null;
    }

    private static string Format(double value) => value >= int.MaxValue ? "inf" : Math.Round(value, 4).ToString(CultureInfo.InvariantCulture);
}

/// <summary>Drops records containing any of the words or phrases (case-insensitive, whole words where they start/end with a letter or digit).</summary>
public sealed class BlockedKeywordsRule : IRecordFilterRule
{
    private readonly Regex pattern;

    public BlockedKeywordsRule(string name, string description, IReadOnlyList<string> keywords)
    {
        if (keywords.Count == 0) throw new ArgumentException($"{name} lists no keyword");
        Name = name;
        Description = description;
        pattern = new Regex(string.Join("|", keywords.Select(Whole)), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
    }

    public string Name { get; }

    public string Description { get; }

    public string? Reject(JsonElement record, string text) => pattern.Match(text) is { Success: true } m ? m.Value : null;

    private static string Whole(string keyword)
    {
        string escaped = Regex.Escape(keyword);
        if (keyword.Length > 0 && char.IsLetterOrDigit(keyword[0])) escaped = @"\b" + escaped;
        if (keyword.Length > 0 && char.IsLetterOrDigit(keyword[^1])) escaped += @"\b";
        return escaped;
    }
}

/// <summary>Drops records in which any of the regular expressions matches (.NET syntax, run non-backtracking).</summary>
public sealed class BlockedPatternsRule : IRecordFilterRule
{
    private readonly Regex[] patterns;

    public BlockedPatternsRule(IReadOnlyList<string> patterns)
    {
        if (patterns.Count == 0) throw new ArgumentException("blocked_patterns lists no pattern");
        this.patterns = [.. patterns.Select(p =>
        {
            try { return new Regex(p, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException)
            { throw new ArgumentException($"blocked_patterns: {SharpTune.IO.MessageText.Quote(p)} is not a usable regular expression: {e.Message}"); }
        })];
    }

    public string Name => "blocked_patterns";

    public string Description => "text matches a blocked pattern";

    public string? Reject(JsonElement record, string text)
    {
        foreach (var pattern in patterns)
            if (pattern.Match(text) is { Success: true } m) return $"{pattern}: {m.Value}";
        return null;
    }
}

/// <summary>
/// Self-instruct's filter of tasks a text model cannot do (github.com/yizhongw/self-instruct,
/// self_instruct/bootstrap_instructions.py: an instruction naming images, graphs, files, maps, drawing, plots, "go to",
/// video, audio, music, flowcharts or diagrams, as whole words, any case), looking as it does at the instruction only
/// (<c>instruction</c>, or the first user message), not at the input it works on; and a link anywhere in the prompt
/// (<c>instruction</c> and <c>input</c>, or the user's messages), as Alpaca-cleaned removed tasks that need a web page.
/// </summary>
public sealed partial class UnseeableRequestRule : IRecordFilterRule
{
    public static readonly IReadOnlyList<string> Keywords =
        ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"];

    private readonly BlockedKeywordsRule keywords = new("unseeable_request", "", Keywords);

    public string Name => "unseeable_request";

    public string Description => "asks about images, files, audio, video or a web page the model cannot see (self-instruct keywords, links)";

    public string? Reject(JsonElement record, string text)
    {
        var userTexts = UserTexts(record).ToList();
        if (userTexts.Count > 0 && keywords.Reject(record, userTexts[0]) is { } keyword) return keyword;
        foreach (string prompt in userTexts)
            if (Url().Match(prompt) is { Success: true } m) return m.Value;
        return null;
    }

    /// <summary>The instruction then the input (alpaca), or the user's messages in order (sharegpt).</summary>
    private static IEnumerable<string> UserTexts(JsonElement record)
    {
        foreach (string key in (string[])["instruction", "input"])
            if (record.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String) yield return value.GetString()!;
        foreach (string list in (string[])["conversations", "messages"])
            if (record.TryGetProperty(list, out var messages) && messages.ValueKind == JsonValueKind.Array)
                foreach (var message in messages.EnumerateArray())
                {
                    if (message.ValueKind != JsonValueKind.Object) continue;
                    var role = message.TryGetProperty("from", out var from) ? from : message.TryGetProperty("role", out var r) ? r : default;
                    if (role.ValueKind != JsonValueKind.String || role.GetString() is not ("human" or "user")) continue;
                    foreach (string key in (string[])["value", "content"])
                        if (message.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String) yield return value.GetString()!;
                }
    }

    [GeneratedRegex(@"(?i)\b(?:https?://|www\.)\S+")]
    private static partial Regex Url();
}
