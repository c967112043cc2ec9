namespace SharpTune.Templates;

/// <summary>
/// LLaMA-Factory's <c>encode_multiturn</c> as texts: <paramref name="Head"/> (template prefix and system block, ""
/// when none is emitted) belongs in front of the first prompt; one (prompt, answer) pair per turn.
/// </summary>
public sealed record TurnTexts(string Head, IReadOnlyList<(string Prompt, string Answer)> Pairs);
