using System.Text.Json;

namespace SharpTune.Tokenization;

/// <summary>An entry of tokenizer.json's <c>added_tokens</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LeftStrip, bool RightStrip,
    bool Normalized, bool Special)
{
    /// <param name="where">The entry, for messages ("added_tokens[3]").</param>
    public static AddedToken FromJson(JsonElement element, string where)
    {
        bool special = Flag(element, "special", false);
        return new AddedToken(
            TokenizerJson.RequiredInt(element, "id", where),
            TokenizerJson.RequiredString(element, "content", where),
            Flag(element, "single_word", false),
            Flag(element, "lstrip", false),
            Flag(element, "rstrip", false),
            // HF's default: special tokens match the raw text, others the normalised text.
            Flag(element, "normalized", !special),
            special);
    }

    private static bool Flag(JsonElement element, string name, bool fallback) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : fallback;
}
