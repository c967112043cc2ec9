using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharpTune.Api;

/// <summary>One function call found in a reply, in OpenAI's terms (arguments as a JSON text).</summary>
public sealed record ParsedToolCall(string Id, string Name, string ArgumentsJson);

/// <summary>
/// Reads the function calls of a reply written in Qwen's (Hermes) format, the one its chat template asks for:
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c> blocks, possibly after some text.
/// </summary>
public static partial class ToolCallParser
{
    /// <summary>What a call block begins with: a streamed reply holds back text that may be its start.</summary>
    public const string CallOpening = "<tool_call>";

    [GeneratedRegex(@"<tool_call>\s*(.*?)\s*</tool_call>", RegexOptions.Singleline)]
    private static partial Regex CallBlock();

    /// <summary>
    /// The text before the first call (null when blank) and the calls; a reply whose blocks are not all valid
    /// <c>{"name", "arguments"}</c> objects is returned whole as text with no calls, as LLaMA-Factory does.
    /// </summary>
    public static (string? Content, IReadOnlyList<ParsedToolCall> Calls) Parse(string reply)
    {
        var matches = CallBlock().Matches(reply);
        if (matches.Count == 0) return (reply, []);
        var calls = new List<ParsedToolCall>();
        foreach (Match match in matches)
        {
            if (TryReadCall(match.Groups[1].Value) is not { } call) return (reply, []);
            calls.Add(call);
        }
        string before = reply[..matches[0].Index].Trim();
        return (before.Length == 0 ? null : before, calls);
    }

    private static ParsedToolCall? TryReadCall(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("arguments", out var arguments))
                return null;
            string argumentsJson = arguments.ValueKind == JsonValueKind.String ? arguments.GetString()! : arguments.GetRawText();
            return new ParsedToolCall(NewCallId(), name.GetString()!, argumentsJson);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>An id in OpenAI's style: "call_" and 24 random alphanumerics.</summary>
    private static string NewCallId() =>
        "call_" + RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 24);
}
