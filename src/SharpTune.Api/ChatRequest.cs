using System.Text;
using System.Text.Json;
using SharpTune.Templates;

namespace SharpTune.Api;

/// <summary>
/// A <c>POST /v1/chat/completions</c> body as OpenAI defines it, turned into the <see cref="ChatMessage"/>s and tools
/// JSON the chat template renders.
/// </summary>
public sealed record ChatRequest(string Model, IReadOnlyList<ChatMessage> Messages, string? ToolsJson, SamplingRequest Sampling)
{
    public static ChatRequest Read(JsonElement body)
    {
        var r = RequestReader.ForBody(body);
        string model = r.RequiredString("model");
        if (r.Get("messages") is not { ValueKind: JsonValueKind.Array } messagesJson || messagesJson.GetArrayLength() == 0)
            throw ApiException.BadRequest("messages must be a non-empty array", "messages");
        var messages = messagesJson.EnumerateArray().Select((m, i) => ReadMessage(m, $"messages[{i}].")).ToList();
        if (messages.All(m => m.Role is ChatRole.System))
            throw ApiException.BadRequest("messages needs at least one user, assistant or tool message", "messages");
        string? tools = ReadTools(r);
        var sampling = SamplingRequest.Read(r, "max_completion_tokens", "max_tokens");
        if (tools is not null && sampling.Stream)
            throw ApiException.BadRequest("stream is not available together with tools: tool calls are parsed from the whole reply (as LLaMA-Factory's server does)", "stream");
        return new ChatRequest(model, messages, tools, sampling);
    }

    private static ChatMessage ReadMessage(JsonElement m, string path)
    {
        if (m.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{path.TrimEnd('.')} must be an object", path.TrimEnd('.'));
        var r = new RequestReader(m, path);
        var role = r.RequiredString("role") switch
        {
            "system" or "developer" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            "tool" => ChatRole.Tool,
            var other => throw r.Invalid("role", $"must be system, developer, user, assistant or tool, got '{other}'"),
        };
        var toolCalls = role == ChatRole.Assistant ? ReadToolCalls(r) : null;
        string? content = ReadContent(r);
        if (content is null && toolCalls is null) throw ApiException.BadRequest($"{r.Path("content")} is required", r.Path("content"));
        return new ChatMessage(role, content ?? "", toolCalls, r.String("name"));
    }

    /// <summary>A string, or an array of text parts joined in order (other part types are refused).</summary>
    private static string? ReadContent(RequestReader r)
    {
        switch (r.Get("content"))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString();
            case { ValueKind: JsonValueKind.Array } parts:
                var text = new StringBuilder();
                int i = 0;
                foreach (var part in parts.EnumerateArray())
                {
                    var p = new RequestReader(part, r.Path($"content[{i++}]."));
                    if (part.ValueKind != JsonValueKind.Object || p.String("type") != "text")
                        throw ApiException.BadRequest($"{p.Path("type")} must be 'text': only text content is served", p.Path("type"));
                    text.Append(p.RequiredString("text"));
                }
                return text.ToString();
            default:
                throw r.Invalid("content", "must be a string or an array of text parts");
        }
    }

    private static IReadOnlyList<ToolCall>? ReadToolCalls(RequestReader r)
    {
        if (r.Get("tool_calls") is not { } calls) return null;
        if (calls.ValueKind != JsonValueKind.Array) throw r.Invalid("tool_calls", "must be an array");
        var result = new List<ToolCall>();
        int i = 0;
        foreach (var call in calls.EnumerateArray())
        {
            var c = new RequestReader(call, r.Path($"tool_calls[{i++}]."));
            if (call.ValueKind != JsonValueKind.Object || c.Get("function") is not { ValueKind: JsonValueKind.Object } function)
                throw ApiException.BadRequest($"{c.Path("function")} must be an object", c.Path("function"));
            var f = new RequestReader(function, c.Path("function."));
            string arguments = f.RequiredString("arguments");
            try
            {
                using var parsed = JsonDocument.Parse(arguments);
            }
            catch (JsonException)
            {
                throw f.Invalid("arguments", "must be a JSON text");
            }
            result.Add(new ToolCall(f.RequiredString("name"), arguments));
        }
        return result;
    }

    /// <summary>The tools array as JSON text for the template, or null without tools (or with tool_choice "none").</summary>
    private static string? ReadTools(RequestReader r)
    {
        string? choice = r.Get("tool_choice") switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } s => s.GetString(),
            _ => throw r.Invalid("tool_choice", "must be 'auto' or 'none': forcing a particular function is not supported"),
        };
        if (choice is not (null or "auto" or "none")) throw r.Invalid("tool_choice", $"must be 'auto' or 'none', got '{choice}'");
        if (r.Get("tools") is not { } tools) return null;
        if (tools.ValueKind != JsonValueKind.Array) throw r.Invalid("tools", "must be an array");
        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var t = new RequestReader(tool, $"tools[{i++}].");
            if (tool.ValueKind != JsonValueKind.Object || t.String("type") != "function" || t.Get("function") is not { ValueKind: JsonValueKind.Object } f
                || new RequestReader(f, t.Path("function.")).String("name") is null)
                throw ApiException.BadRequest($"{t.Path("function")} must be a function tool with a name", t.Path("function"));
        }
        return choice == "none" || tools.GetArrayLength() == 0 ? null : tools.GetRawText();
    }
}
