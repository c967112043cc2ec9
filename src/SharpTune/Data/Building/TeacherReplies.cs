using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharpTune.Data.Building;

/// <summary>
/// Reads the teacher's replies. A list (questions, paraphrases, tasks) may come as a JSON array of strings (or an
/// object holding one), in a ```json fence or not; as a numbered or bulleted list (<c>1.</c>, <c>1)</c>, <c>1、</c>,
/// <c>-</c>, <c>*</c>, <c>•</c>, <c>Q1:</c>, <c>问题1：</c>); or, with no list marks at all, one item per line, leaving
/// out lines that introduce the list (ending with a colon). An empty result means the reply was unusable.
/// </summary>
public static partial class TeacherReplies
{
    public static IReadOnlyList<string> ParseList(string reply, int atMost)
    {
        string text = Fence().Match(reply) is { Success: true } fenced ? fenced.Groups[1].Value : reply;
        var items = FromJson(text.Trim()) ?? FromLines(text);
        return items.Select(Clean).Where(i => i.Any(char.IsLetter)).Distinct(StringComparer.Ordinal).Take(atMost).ToList();
    }

    /// <summary>An answer reply: the trimmed text, or null when it is empty or the prompt's not-answerable reply.</summary>
    public static string? ParseAnswer(string reply, string notAnswerable)
    {
        string answer = reply.Trim();
        if (!answer.Any(char.IsLetterOrDigit)) return null;
        string bare = answer.TrimEnd('.', '。', '!', '！').Trim();
        return string.Equals(bare, notAnswerable, StringComparison.OrdinalIgnoreCase) ? null : answer;
    }

    private static List<string>? FromJson(string text)
    {
        if (!(text.StartsWith('[') || text.StartsWith('{'))) return null;
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
                root = root.EnumerateObject().Select(p => p.Value).FirstOrDefault(v => v.ValueKind == JsonValueKind.Array);
            if (root.ValueKind != JsonValueKind.Array) return null;
            return root.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!).ToList();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static List<string> FromLines(string text)
    {
        var lines = text.ReplaceLineEndings("\n").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        var marked = lines.Select(l => ListItem().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
        return marked.Count > 0 ? marked : lines.Where(l => !l.EndsWith(':') && !l.EndsWith('：')).ToList();
    }

    /// <summary>White space collapsed, surrounding quotes and bold marks removed.</summary>
    private static string Clean(string item) => Space().Replace(item, " ").Trim().Trim('"', '“', '”', '*').Trim();

    [GeneratedRegex(@"```(?:json)?\s*\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex Fence();

    [GeneratedRegex(@"^(?:\d+\s*[.)、:：]|[-*•]|(?:Q|Question|问题)\s*\d*\s*[:：.])\s*(.+)$", RegexOptions.IgnoreCase)]
    private static partial Regex ListItem();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Space();
}
