using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// Rewrites the string values of a record's JSON in place: the data commands that change text (scrub, clean) change
/// only the strings they must and keep keys, numbers, spacing and every other string byte for byte as given.
/// </summary>
public static class RecordStrings
{
    /// <summary>
    /// The record's JSON with every string value for which <paramref name="rewrite"/> (given the field's path, e.g.
    /// <c>conversations[1].value</c>, and the value) returns a new text replaced by it, or null when none changed.
    /// </summary>
    public static byte[]? Rewrite(byte[] json, Func<string, string, string?> rewrite)
    {
        var reader = new Utf8JsonReader(json);
        var containers = new List<Container>();
        MemoryStream? output = null;
        int copied = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    containers[^1].Property = reader.GetString();
                    continue;
                case JsonTokenType.EndObject or JsonTokenType.EndArray:
                    containers.RemoveAt(containers.Count - 1);
                    continue;
            }
            string? field = reader.TokenType == JsonTokenType.String ? FieldPath(containers) : null;
            if (containers.Count > 0 && containers[^1].IsArray) containers[^1].Index++;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                containers.Add(new Container(reader.TokenType == JsonTokenType.StartArray));
            if (field is null) continue;
            if (rewrite(field, reader.GetString()!) is not { } rewritten) continue;
            output ??= new MemoryStream(json.Length + 64);
            output.Write(json, copied, (int)reader.TokenStartIndex - copied);
            output.WriteByte((byte)'"');
            output.Write(JsonEncodedText.Encode(rewritten, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes);
            output.WriteByte((byte)'"');
            copied = (int)reader.BytesConsumed;
        }
        if (output is null) return null;
        output.Write(json, copied, json.Length - copied);
        return output.ToArray();
    }

    /// <summary>The top-level key a field path starts with: <c>conversations</c> for <c>conversations[1].value</c>.</summary>
    public static string TopLevelKey(string field)
    {
        int end = field.IndexOfAny(['.', '[']);
        return end < 0 ? field : field[..end];
    }

    /// <summary>An object or array being read: the property or the index (of the next element) the reader is at.</summary>
    private sealed class Container(bool isArray)
    {
        public bool IsArray { get; } = isArray;
        public int Index { get; set; }
        public string? Property { get; set; }
    }

    /// <summary>The path of the value being read, e.g. <c>conversations[1].value</c>.</summary>
    private static string FieldPath(List<Container> containers)
    {
        if (containers.Count == 1) return containers[0].Property ?? "";
        var text = new System.Text.StringBuilder();
        for (int depth = 0; depth < containers.Count; depth++)
        {
            var container = containers[depth];
            // Ancestors' indexes were advanced when the element being read started.
            if (container.IsArray) text.Append('[').Append(depth == containers.Count - 1 ? container.Index : container.Index - 1).Append(']');
            else text.Append(text.Length > 0 ? "." : "").Append(container.Property);
        }
        return text.ToString();
    }
}
