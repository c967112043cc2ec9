using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SharpTune.Templates;

/// <summary>
/// Which source's rules apply where a model's own Jinja chat template and LLaMA-Factory's formatters disagree on the
/// same slots: <see cref="Jinja"/> for <see cref="ChatTemplate.Render"/>, <see cref="LlamaFactory"/> for
/// <see cref="ChatTemplate.EncodePairs(IReadOnlyList{ChatMessage}, string?, string?)"/>.
/// </summary>
internal enum Dialect { Jinja, LlamaFactory }

/// <summary>How a template describes the available tools in the system prompt and writes an assistant's calls.</summary>
internal abstract class ToolFormat
{
    /// <summary>LLaMA-Factory's <c>tool_format</c> names that SharpTune implements.</summary>
    public static ToolFormat Named(string name) => name switch
    {
        "default" => new DefaultToolFormat(),
        "qwen" => new QwenToolFormat(separatorOnlyAfterSystem: false, rawStringArguments: false),
        "llama3" => new Llama3ToolFormat(),
        "glm4" => new Glm4ToolFormat(),
        _ => throw new ArgumentException($"Unknown tool_format '{name}'. Known tool formats: default, glm4, llama3, qwen."),
    };

    /// <summary>The system-slot content: <paramref name="system"/> (null = no system text at all) plus the tool prompt.</summary>
    public abstract string SystemWithTools(string? system, IReadOnlyList<JsonElement> tools, Dialect dialect);

    /// <summary>The text of one assistant turn's function calls (without any text content).</summary>
    public abstract string FormatCalls(IReadOnlyList<ToolCall> calls, Dialect dialect);

    /// <summary>
    /// For a format that writes a call as a JSON <c>{"name", "arguments"}</c> object: the text before and after the
    /// JSON the model is left to write, which is the arguments object when <paramref name="function"/> names the
    /// function, else the whole call object. Null for other formats.
    /// </summary>
    public virtual (string Before, string After)? CallAround(string? function) => null;

    protected static JsonElement ParseArguments(ToolCall call)
    {
        try
        {
            using var doc = JsonDocument.Parse(call.ArgumentsJson);
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"Tool call '{call.Name}': ArgumentsJson is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>LLaMA-Factory accepts bare function schemas and wraps them as OpenAI-style tools.</summary>
    protected static string DumpWrapped(JsonElement tool, int? indent = null)
    {
        if (IsFunctionTool(tool))
            return PyJson.Dumps(tool, indent);
        using var doc = JsonDocument.Parse("{\"type\":\"function\",\"function\":" + tool.GetRawText() + "}");
        return PyJson.Dumps(doc.RootElement, indent);
    }

    protected static bool IsFunctionTool(JsonElement tool) =>
        tool.ValueKind == JsonValueKind.Object
        && tool.TryGetProperty("type", out var type)
        && type.ValueKind == JsonValueKind.String
        && type.GetString() == "function";
}

/// <summary>Qwen's Hermes-style tools: a <c># Tools</c> block of JSON lines and <c>&lt;tool_call&gt;</c> JSON calls.</summary>
/// <param name="separatorOnlyAfterSystem">
/// Qwen3's template writes the blank line before <c># Tools</c> only after a system message; Qwen2.5 (always a
/// system text) and LLaMA-Factory's qwen tool format write it unconditionally.
/// </param>
/// <param name="rawStringArguments">Qwen3's template pastes string-valued arguments verbatim instead of as JSON.</param>
internal sealed class QwenToolFormat(bool separatorOnlyAfterSystem, bool rawStringArguments) : ToolFormat
{
    private const string Head =
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";

    private const string Tail =
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        + "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

    public override string SystemWithTools(string? system, IReadOnlyList<JsonElement> tools, Dialect dialect)
    {
        var sb = new StringBuilder(system ?? "");
        if (system is not null || !separatorOnlyAfterSystem)
            sb.Append("\n\n");
        sb.Append(Head);
        foreach (var tool in tools)
            sb.Append('\n').Append(dialect == Dialect.LlamaFactory ? DumpWrapped(tool) : PyJson.Dumps(tool));
        sb.Append(Tail);
        return sb.ToString();
    }

    public override string FormatCalls(IReadOnlyList<ToolCall> calls, Dialect dialect) =>
        string.Join("\n", calls.Select(call =>
        {
            // Jinja pastes the name between quotes; LLaMA-Factory json.dumps the whole {"name", "arguments"} object.
            var name = dialect == Dialect.LlamaFactory ? PyJson.DumpsString(call.Name) : "\"" + call.Name + "\"";
            var arguments = ParseArguments(call);
            var argumentsText = dialect == Dialect.Jinja && rawStringArguments && arguments.ValueKind == JsonValueKind.String
                ? arguments.GetString()!
                : PyJson.Dumps(arguments);
            return CallOpen + "{\"name\": " + name + ", \"arguments\": " + argumentsText + "}" + CallClose;
        }));

    private const string CallOpen = "<tool_call>\n", CallClose = "\n</tool_call>";

    public override (string Before, string After)? CallAround(string? function) =>
        function is null
            ? (CallOpen, CallClose)
            : (CallOpen + "{\"name\": " + PyJson.DumpsString(function) + ", \"arguments\": ", "}" + CallClose);
}

/// <summary>LLaMA-Factory's "default" ReAct-style tool format (<c>Action:</c> / <c>Action Input:</c>).</summary>
internal sealed class DefaultToolFormat : ToolFormat
{
    public override string SystemWithTools(string? system, IReadOnlyList<JsonElement> tools, Dialect dialect)
    {
        var toolText = new StringBuilder();
        var names = new List<string>();
        foreach (var wrapped in tools)
        {
            var tool = IsFunctionTool(wrapped) && wrapped.TryGetProperty("function", out var f) ? f : wrapped;
            var name = Text(tool, "name");
            var args = new StringBuilder();
            if (tool.TryGetProperty("parameters", out var parameters)
                && parameters.ValueKind == JsonValueKind.Object
                && parameters.TryGetProperty("properties", out var properties)
                && properties.ValueKind == JsonValueKind.Object)
            {
                var required = parameters.TryGetProperty("required", out var r) && r.ValueKind == JsonValueKind.Array
                    ? r.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToHashSet()
                    : [];
                foreach (var param in properties.EnumerateObject())
                {
                    args.Append("  - ").Append(param.Name)
                        .Append(" (").Append(Text(param.Value, "type"))
                        .Append(required.Contains(param.Name) ? ", required" : "")
                        .Append("): ").Append(Text(param.Value, "description"));
                    if (param.Value.TryGetProperty("enum", out var e) && e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0)
                        args.Append(", should be one of [").Append(string.Join(", ", e.EnumerateArray().Select(Plain))).Append(']');
                    if (param.Value.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Object && items.EnumerateObject().Any())
                        args.Append(", where each item should be ").Append(Text(items, "type"));
                    args.Append('\n');
                }
            }

            toolText.Append("> Tool Name: ").Append(name)
                .Append("\nTool Description: ").Append(Text(tool, "description"))
                .Append("\nTool Args:\n").Append(args).Append('\n');
            names.Add(name);
        }

        return (system ?? "")
            + "You have access to the following tools:\n" + toolText
            + "Use the following format if using a tool:\n```\n"
            + "Action: tool name (one of [" + string.Join(", ", names) + "])\n"
            + "Action Input: the input to the tool, in a JSON format representing the kwargs "
            + "(e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n";
    }

    public override string FormatCalls(IReadOnlyList<ToolCall> calls, Dialect dialect) =>
        string.Join("\n", calls.Select(call => "Action: " + call.Name + "\nAction Input: " + PyJson.Dumps(ParseArguments(call))));

    private static string Text(JsonElement obj, string key) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(key, out var v) ? Plain(v) : "";

    // Python's str.format of a value: strings as they are, anything else in its JSON form.
    private static string Plain(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : PyJson.Dumps(v);
}

/// <summary>LLaMA-Factory's Llama 3.x JSON tool calling (tools described in the system message).</summary>
internal sealed class Llama3ToolFormat : ToolFormat
{
    public override string SystemWithTools(string? system, IReadOnlyList<JsonElement> tools, Dialect dialect)
    {
        var toolText = new StringBuilder();
        foreach (var tool in tools)
            toolText.Append(DumpWrapped(tool, indent: 4)).Append("\n\n");
        var date = DateTime.Now.ToString("dd MMM yyyy", CultureInfo.InvariantCulture);
        return (system ?? "")
            + "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n"
            + "You have access to the following functions. To call a function, please respond with JSON for a function call. "
            + "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. "
            + "Do not use variables.\n\n" + toolText;
    }

    public override string FormatCalls(IReadOnlyList<ToolCall> calls, Dialect dialect)
    {
        var objects = calls
            .Select(call => "{\"name\": " + PyJson.DumpsString(call.Name) + ", \"parameters\": " + PyJson.Dumps(ParseArguments(call)) + "}")
            .ToList();
        return objects.Count == 1 ? objects[0] : "[" + string.Join(", ", objects) + "]";
    }
}

/// <summary>
/// LLaMA-Factory's GLM-4 tool format (<c>GLM4ToolUtils</c>), used by the chatglm3 and glm4 templates: each tool as a
/// <c>## name</c> section of its JSON indented by 4 in a Chinese system prompt, and a call as the function name on its
/// own line followed by the arguments' JSON. GLM-4 calls one function per turn.
/// </summary>
internal sealed class Glm4ToolFormat : ToolFormat
{
    private const string Prompt =
        "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
        + "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具";

    public override string SystemWithTools(string? system, IReadOnlyList<JsonElement> tools, Dialect dialect)
    {
        var sb = new StringBuilder(system ?? "").Append(Prompt);
        foreach (var wrapped in tools)
        {
            var tool = IsFunctionTool(wrapped) && wrapped.TryGetProperty("function", out var f) ? f : wrapped;
            string name = tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()!
                : throw new ArgumentException("A tool for the GLM-4 tool format needs a \"name\".");
            sb.Append("\n\n## ").Append(name).Append("\n\n").Append(PyJson.Dumps(tool, indent: 4))
                .Append("\n在调用上述函数时，请使用 Json 格式表示调用的参数。");
        }
        return sb.ToString();
    }

    public override string FormatCalls(IReadOnlyList<ToolCall> calls, Dialect dialect)
    {
        if (calls.Count > 1)
            throw new ArgumentException("GLM-4 does not support parallel functions: an assistant turn may call one function.");
        return calls[0].Name + "\n" + PyJson.Dumps(ParseArguments(calls[0]));
    }
}
