using System.Text.Json;

namespace SharpTune.Tokenization;

/// <summary>
/// Required fields of tokenizer.json. A missing one is an error that names it; JsonElement.GetProperty would only
/// say that some key was not present.
/// </summary>
internal static class TokenizerJson
{
    /// <param name="section">Where the field belongs, for the message ("model", "pre_tokenizer", ...).</param>
    public static JsonElement Required(JsonElement element, string name, string section) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out JsonElement value)
            ? value
            : throw new InvalidDataException($"tokenizer.json: {section} has no \"{name}\"");
}
