using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>
/// Typed fields of tokenizer.json. A missing or mistyped one is an error that names it (the loader puts the file in
/// front); JsonElement's own accessors would only say that some key was not present or had another type.
/// </summary>
internal static class TokenizerJson
{
    /// <param name="section">Where the field belongs, for the message ("model", "pre_tokenizer", ...).</param>
    public static JsonElement Required(JsonElement element, string name, string section) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out JsonElement value)
            ? value
            : throw new InvalidDataException($"{section} has no \"{name}\"");

    public static string RequiredString(JsonElement element, string name, string section)
    {
        JsonElement value = Required(element, name, section);
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new InvalidDataException($"{section}: \"{name}\" must be a string, got {JsonKinds.Describe(value)}");
    }

    public static int RequiredInt(JsonElement element, string name, string section)
    {
        JsonElement value = Required(element, name, section);
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number)
            ? number
            : throw new InvalidDataException($"{section}: \"{name}\" must be an integer, got {MessageText.Quote(value.GetRawText())}");
    }

    public static JsonElement RequiredArray(JsonElement element, string name, string section)
    {
        JsonElement value = Required(element, name, section);
        return value.ValueKind == JsonValueKind.Array
            ? value
            : throw new InvalidDataException($"{section}: \"{name}\" must be a list, got {JsonKinds.Describe(value)}");
    }

    /// <summary>The string, or null when the field is absent or null.</summary>
    public static string? OptionalString(JsonElement element, string name, string section)
    {
        if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new InvalidDataException($"{section}: \"{name}\" must be a string, got {JsonKinds.Describe(value)}");
    }

    /// <summary>The flag, or <paramref name="fallback"/> when the field is absent or null.</summary>
    public static bool OptionalBool(JsonElement element, string name, string section, bool fallback)
    {
        if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{section}: \"{name}\" must be true or false, got {JsonKinds.Describe(value)}"),
        };
    }
}
