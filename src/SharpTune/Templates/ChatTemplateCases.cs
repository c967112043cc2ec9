using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharpTune.Templates;

/// <summary>One conversation to render, as given to <c>apply_chat_template</c>.</summary>
public sealed record TemplateCase(IReadOnlyList<ChatMessage> Messages, string? ToolsJson, bool AddGenerationPrompt, bool? EnableThinking);

/// <summary>
/// The input format of <c>sharptune check template</c>: a JSON array of cases shaped like the chat-template fixture
/// files (<c>messages</c> in the Hugging Face convention, optional <c>tools</c>, <c>add_generation_prompt</c>,
/// optional <c>template_kwargs.enable_thinking</c>); other fields are ignored.
/// </summary>
public static class ChatTemplateCases
{
    private static readonly JsonWriterOptions CompactWriter = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IReadOnlyList<TemplateCase> Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new FormatException("Template cases must be a JSON array.");

        var cases = new List<TemplateCase>();
        var index = 0;
        foreach (var item in doc.RootElement.EnumerateArray())
        {
            try
            {
                cases.Add(ParseCase(item));
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new FormatException($"Template case {index}: {e.Message}", e);
            }
            index++;
        }
        return cases;
    }

    private static TemplateCase ParseCase(JsonElement item)
    {
        var messages = Required(item, "messages", "The case").EnumerateArray().Select(ParseMessage).ToList();
        var tools = item.TryGetProperty("tools", out var t) && t.ValueKind != JsonValueKind.Null ? t.GetRawText() : null;
        var addGenerationPrompt = item.TryGetProperty("add_generation_prompt", out var g) && g.GetBoolean();
        bool? enableThinking = item.TryGetProperty("template_kwargs", out var kwargs)
            && kwargs.ValueKind == JsonValueKind.Object
            && kwargs.TryGetProperty("enable_thinking", out var e)
            && e.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? e.GetBoolean()
                : null;
        return new TemplateCase(messages, tools, addGenerationPrompt, enableThinking);
    }

    private static ChatMessage ParseMessage(JsonElement m)
    {
        var role = Required(m, "role", "A message").GetString() switch
        {
            "system" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            "tool" => ChatRole.Tool,
            var other => throw new FormatException($"Unknown message role '{other}'."),
        };
        // A null content (an assistant turn that only calls tools) renders like an empty one in every template.
        var content = m.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
        List<ToolCall>? toolCalls = null;
        if (m.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            toolCalls = calls.EnumerateArray().Select(ParseToolCall).ToList();
        return new ChatMessage(role, content, toolCalls, OptionalString(m, "name"), OptionalString(m, "reasoning_content"));
    }

    private static ToolCall ParseToolCall(JsonElement call)
    {
        // HF convention nests the call under "function"; a bare {"name", "arguments"} is accepted too.
        var function = call.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object ? f : call;
        var name = Required(function, "name", "A tool call").GetString() ?? throw new FormatException("A tool call has no name.");
        var arguments = function.TryGetProperty("arguments", out var a) ? Compact(a) : "{}";
        return new ToolCall(name, arguments);
    }

    /// <summary>A field the case cannot do without; JsonElement.GetProperty would not say which one is missing.</summary>
    private static JsonElement Required(JsonElement element, string name, string owner) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value)
            ? value
            : throw new FormatException($"{owner} has no \"{name}\".");

    private static string? OptionalString(JsonElement m, string key) =>
        m.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static string Compact(JsonElement value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, CompactWriter))
            value.WriteTo(writer);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
