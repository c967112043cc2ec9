using System.Text;
using System.Text.Json;
using SharpTune.Inference;
using SharpTune.Templates;

namespace SharpTune.Api;

/// <summary>One function a reply may be made to call: its name and its parameters' JSON schema (null when it declares none).</summary>
public sealed record ToolDefinition(string Name, JsonElement? Parameters);

/// <summary>
/// A <c>POST /v1/chat/completions</c> body as OpenAI defines it, turned into the <see cref="ChatMessage"/>s and tools
/// JSON the chat template renders.
/// </summary>
/// <param name="ForcedTools">
/// tool_choice "required" (all the tools) or a named function (that one): the reply must call one of these; null
/// when the model decides (auto) or no tools are offered.
/// </param>
/// <param name="ResponseSchema">response_format json_object or json_schema: the reply must be one JSON value valid for it.</param>
public sealed record ChatRequest(string Model, IReadOnlyList<ChatMessage> Messages, string? ToolsJson, SamplingRequest Sampling,
    IReadOnlyList<ToolDefinition>? ForcedTools = null, JsonSchema? ResponseSchema = null)
{
    /// <summary>
    /// Every parameter of OpenAI's chat completions request. Those that only describe the caller (user,
    /// safety_identifier, metadata, prompt_cache_key, prompt_cache_retention) are accepted and change nothing; the
    /// others are served or refused by <see cref="RefuseUnserved"/> unless they ask for nothing.
    /// </summary>
    private static readonly IReadOnlySet<string> Parameters = new HashSet<string>(SamplingRequest.Parameters, StringComparer.Ordinal)
    {
        "model", "messages", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs",
        "top_logprobs", "store", "metadata", "modalities", "audio", "prediction", "reasoning_effort", "verbosity", "service_tier",
        "web_search_options", "functions", "function_call", "prompt_cache_key", "prompt_cache_retention", "safety_identifier",
    };

    public static ChatRequest Read(JsonElement body)
    {
        var r = RequestReader.ForBody(body);
        r.RejectUnknown(Parameters);
        RefuseUnserved(r);
        var responseSchema = ReadResponseFormat(r);
        string model = r.RequiredString("model");
        if (r.Get("messages") is not { ValueKind: JsonValueKind.Array } messagesJson || messagesJson.GetArrayLength() == 0)
            throw ApiException.BadRequest("messages must be a non-empty array", "messages");
        var messages = messagesJson.EnumerateArray().Select((m, i) => ReadMessage(m, $"messages[{i}].")).ToList();
        if (messages.All(m => m.Role is ChatRole.System))
            throw ApiException.BadRequest("messages needs at least one user, assistant or tool message", "messages");
        var (tools, forced) = ReadTools(r);
        if (forced is not null && responseSchema is not null)
            throw r.Invalid("tool_choice", "forces a function call, which a JSON response_format leaves no room for: send one or the other");
        var sampling = SamplingRequest.Read(r, "max_completion_tokens", "max_tokens");
        return new ChatRequest(model, messages, tools, sampling, forced, responseSchema);
    }

    /// <summary>The chat parameters this server does not implement, accepted only at the value that asks for nothing.</summary>
    private static void RefuseUnserved(RequestReader r)
    {
        if (r.Bool("logprobs") == true) throw r.Invalid("logprobs", "is not supported");
        r.OnlyDefault("top_logprobs", v => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n == 0, "0");
        r.OnlyDefault("parallel_tool_calls", v => v.ValueKind == JsonValueKind.True, "true");
        r.OnlyDefault("store", v => v.ValueKind == JsonValueKind.False, "false: nothing is stored");
        r.OnlyDefault("modalities", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 1 && v[0].ValueKind == JsonValueKind.String && v[0].GetString() == "text", "[\"text\"]");
        r.OnlyDefault("service_tier", v => v.ValueKind == JsonValueKind.String && v.GetString() is "auto" or "default", "'auto' or 'default'");
        foreach (string unserved in new[] { "audio", "prediction", "reasoning_effort", "verbosity", "web_search_options" })
            r.OnlyDefault(unserved, _ => false);
        foreach (string legacy in new[] { "functions", "function_call" })
            if (r.Get(legacy) is not null) throw r.Invalid(legacy, "is not supported: use tools and tool_choice, which replace it");
    }

    private static readonly IReadOnlySet<string> JsonSchemaFields = new HashSet<string>(StringComparer.Ordinal) { "name", "description", "schema", "strict" };

    /// <summary>
    /// The schema a response_format asks the reply to follow: null for text, any object for json_object, the given
    /// schema for json_schema (any value without one; strict or not, it is enforced).
    /// </summary>
    private static JsonSchema? ReadResponseFormat(RequestReader r)
    {
        if (r.Get("response_format") is not { } format) return null;
        if (format.ValueKind != JsonValueKind.Object) throw r.Invalid("response_format", "must be an object with a type ('text', 'json_object' or 'json_schema')");
        var f = new RequestReader(format, "response_format.");
        switch (f.RequiredString("type"))
        {
            case "text":
                return null;
            case "json_object":
                return JsonSchema.AnyObject;
            case "json_schema":
                if (f.Get("json_schema") is not { ValueKind: JsonValueKind.Object } definition) throw f.Invalid("json_schema", "must be an object with a name and a schema");
                var d = new RequestReader(definition, "response_format.json_schema.");
                d.RejectUnknown(JsonSchemaFields);
                d.RequiredString("name");
                d.String("description");
                d.Bool("strict");
                if (d.Get("schema") is not { } schema) return JsonSchema.Any;
                try
                {
                    return JsonSchema.Compile(schema, d.Path("schema"));
                }
                catch (ArgumentException e)
                {
                    throw ApiException.BadRequest(e.Message, d.Path("schema"));
                }
            case var other:
                throw f.Invalid("type", $"must be 'text', 'json_object' or 'json_schema', got {ApiException.Quote(other)}");
        }
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
            var other => throw r.Invalid("role", $"must be system, developer, user, assistant or tool, got {ApiException.Quote(other)}"),
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

    /// <summary>
    /// The tools array as JSON text for the template (null without tools, or with tool_choice "none": then none are
    /// offered) and the functions a forced tool_choice ("required", or {"type": "function", "function": {"name"}})
    /// leaves to call.
    /// </summary>
    private static (string? ToolsJson, IReadOnlyList<ToolDefinition>? Forced) ReadTools(RequestReader r)
    {
        var definitions = new List<ToolDefinition>();
        if (r.Get("tools") is { } tools)
        {
            if (tools.ValueKind != JsonValueKind.Array) throw r.Invalid("tools", "must be an array");
            int i = 0;
            foreach (var tool in tools.EnumerateArray())
            {
                var t = new RequestReader(tool, $"tools[{i++}].");
                if (tool.ValueKind != JsonValueKind.Object || t.String("type") != "function" || t.Get("function") is not { ValueKind: JsonValueKind.Object } f
                    || new RequestReader(f, t.Path("function.")).String("name") is not string name)
                    throw ApiException.BadRequest($"{t.Path("function")} must be a function tool with a name", t.Path("function"));
                definitions.Add(new ToolDefinition(name, new RequestReader(f, t.Path("function.")).Get("parameters")));
            }
        }
        string? toolsJson = definitions.Count > 0 ? r.Get("tools")!.Value.GetRawText() : null;
        switch (r.Get("tool_choice"))
        {
            case null:
                return (toolsJson, null);
            case { ValueKind: JsonValueKind.String } s:
                switch (s.GetString()!)
                {
                    case "auto":
                        return (toolsJson, null);
                    case "none":
                        return (null, null);
                    case "required":
                        return toolsJson is null ? throw r.Invalid("tool_choice", "is 'required' but the request offers no tools") : (toolsJson, definitions);
                    case var other:
                        throw r.Invalid("tool_choice", $"must be 'auto', 'none', 'required' or a function, got {ApiException.Quote(other)}");
                }
            case { ValueKind: JsonValueKind.Object } named:
                var c = new RequestReader(named, "tool_choice.");
                if (c.String("type") != "function" || c.Get("function") is not { ValueKind: JsonValueKind.Object } function)
                    throw r.Invalid("tool_choice", "must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
                string wanted = new RequestReader(function, "tool_choice.function.").RequiredString("name");
                return definitions.FirstOrDefault(d => d.Name == wanted) is { } chosen
                    ? (toolsJson, [chosen])
                    : throw ApiException.BadRequest($"tool_choice.function.name {ApiException.Quote(wanted)} is not one of the request's tools", "tool_choice.function.name");
            default:
                throw r.Invalid("tool_choice", "must be 'auto', 'none', 'required' or a function");
        }
    }
}
