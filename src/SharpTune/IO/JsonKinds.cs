using System.Text.Json;

namespace SharpTune.IO;

internal static class JsonKinds
{
    /// <summary>The JSON type of a value in words, for "must be X, got Y" messages.</summary>
    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>A JsonException's reason without the position suffix that System.Text.Json appends.</summary>
    public static string Reason(JsonException e)
    {
        string message = e.Message;
        foreach (string marker in new[] { " Path: ", " LineNumber: " })
        {
            int at = message.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0) message = message[..at];
        }
        return message.TrimEnd();
    }
}
