using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Inference;

namespace SharpTune.Api;

/// <summary>The rule a chat request puts on the reply's tokens: a JSON response_format, or a forced function call.</summary>
public static class ReplyConstraints
{
    /// <summary>
    /// Null when the model writes freely. For a forced call, the template's call opening is forced (with the
    /// function's name when one function is left), the model writes the JSON that follows constrained by the
    /// function's parameters schema (compiled leniently: a keyword outside the subset leaves its part open), and the
    /// closing is forced, so the reply always parses as a call.
    /// </summary>
    public static ITokenConstraint? For(ChatRequest request, ServedModel model)
    {
        if (request.ResponseSchema is { } schema) return new JsonConstraint(model.TokenBytes, schema);
        if (request.ForcedTools is not { } tools) return null;
        string? function = tools.Count == 1 ? tools[0].Name : null;
        var (before, after) = model.Template.ToolCallAround(function)
            ?? throw ApiException.BadRequest(
                $"tool_choice cannot force a call with the '{model.Template.Name}' template: its tool format does not write calls as JSON objects (Qwen's <tool_call> format does)",
                "tool_choice");
        var json = function is not null ? Parameters(tools[0]) : new JsonObject { ["anyOf"] = new JsonArray(tools.Select(CallObject).ToArray()) };
        JsonSchema written;
        try
        {
            written = JsonSchema.Compile(JsonSerializer.SerializeToElement(json), "tools", lenient: true);
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest($"a tool's parameters are not a usable JSON schema: {e.Message}", "tools");
        }
        return new ConstraintChain(
        [
            new ForcedTokens(model.Tokenizer.Encode(before)),
            new JsonConstraint(model.TokenBytes, written),
            new ForcedTokens(model.Tokenizer.Encode(after)),
        ]);
    }

    /// <summary>The function's parameters schema; without one, any arguments object.</summary>
    private static JsonNode Parameters(ToolDefinition tool) =>
        tool.Parameters is { } p ? JsonNode.Parse(p.GetRawText())! : new JsonObject { ["type"] = "object" };

    /// <summary>A whole call of <paramref name="tool"/>: {"name": its name, "arguments": its parameters}.</summary>
    private static JsonNode CallObject(ToolDefinition tool) => new JsonObject
    {
        ["type"] = "object",
        ["properties"] = new JsonObject { ["name"] = new JsonObject { ["const"] = tool.Name }, ["arguments"] = Parameters(tool) },
        ["required"] = new JsonArray("name", "arguments"),
        ["additionalProperties"] = false,
    };
}
