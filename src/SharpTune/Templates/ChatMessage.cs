namespace SharpTune.Templates;

public enum ChatRole { System, User, Assistant, Tool }

/// <summary>One function call of an assistant turn.</summary>
/// <param name="Name">Function name.</param>
/// <param name="ArgumentsJson">
/// The JSON text of the arguments value, normally the compact text of a JSON object. A JSON string value
/// (e.g. <c>"\"{\\\"a\\\": 1}\""</c>) stands for arguments given as a string, which some templates paste verbatim.
/// </param>
public sealed record ToolCall(string Name, string ArgumentsJson);

/// <summary>A chat message in the Hugging Face convention (tool results are <see cref="ChatRole.Tool"/> messages).</summary>
public sealed record ChatMessage(
    ChatRole Role,
    string Content,
    IReadOnlyList<ToolCall>? ToolCalls = null,
    string? Name = null,
    string? ReasoningContent = null);
