using SharpTune.Templates;

namespace SharpTune.Data;

/// <summary>
/// A record in LLaMA-Factory's aligned form (<c>_prompt</c> + <c>_response</c>, <c>_system</c>, <c>_tools</c>):
/// <paramref name="Messages"/> alternate a prompt (user message or tool result) and an answer (assistant message,
/// with <see cref="ChatMessage.ToolCalls"/> for a function call) and end with the answer that is the response.
/// </summary>
/// <param name="System">System text; null or "" means the template's default.</param>
/// <param name="Tools">The dataset's tools JSON text; null or "" means none, any other text (even "[]") emits a system block.</param>
public sealed record AlignedExample(IReadOnlyList<ChatMessage> Messages, string? System, string? Tools);
