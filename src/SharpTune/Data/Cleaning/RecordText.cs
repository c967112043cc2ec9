using System.Text;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// The text of a record that deduplication compares. By default every string value of the record, depth first in the
/// file's key order, joined by newlines: that covers alpaca (instruction, input, output, system, history) and sharegpt
/// (each message's content and role) without needing dataset_info.json. With <c>--fields a,b</c>, the string values
/// under those top-level keys, in the order given. Numbers and booleans count as their JSON text; null and keys do not.
/// Since normalisation collapses white space, a boundary between fields counts as one space: an instruction
/// "Translate: hi" with an empty input duplicates the instruction "Translate:" with the input "hi", as the prompt
/// LLaMA-Factory builds from them (instruction + "\n" + input) is the same too.
/// </summary>
public sealed class RecordText
{
    private readonly IReadOnlyList<string>? fields;
    private readonly bool[] fieldSeen;

    /// <summary>One builder per thread, reused from record to record.</summary>
    [ThreadStatic]
    private static StringBuilder? t_text;

    public RecordText(IReadOnlyList<string>? fields)
    {
        if (fields is { Count: 0 }) throw new ArgumentException("--fields names no field");
        this.fields = fields;
        fieldSeen = new bool[fields?.Count ?? 0];
    }

    /// <summary>The record's compared text (not yet normalised). Thread-safe: records are read in parallel.</summary>
    public string Of(JsonElement record)
    {
        var text = t_text ??= new StringBuilder();
        text.Clear();
        bool first = true;
        if (fields is null) Append(record, text, ref first);
        else
            for (int i = 0; i < fields.Count; i++)
            {
                if (!record.TryGetProperty(fields[i], out var value)) continue;
                fieldSeen[i] = true; // every writer stores true: a benign race
                Append(value, text, ref first);
            }
        return text.ToString();
    }

    /// <summary>A field of <c>--fields</c> that no record had is almost certainly a typo: dedup on nothing would keep one record.</summary>
    public void CheckFieldsFound(string path)
    {
        for (int i = 0; i < fieldSeen.Length; i++)
            if (!fieldSeen[i])
                throw new InvalidDataException($"{path}: no record has the field '{fields![i]}' named in --fields");
    }

    private static void Append(JsonElement value, StringBuilder text, ref bool first)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in value.EnumerateObject()) Append(property.Value, text, ref first);
                break;
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray()) Append(item, text, ref first);
                break;
            case JsonValueKind.String:
                Separate(text, ref first).Append(value.GetString());
                break;
            case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                Separate(text, ref first).Append(value.GetRawText());
                break;
        }
    }

    private static StringBuilder Separate(StringBuilder text, ref bool first)
    {
        if (!first) text.Append('\n');
        first = false;
        return text;
    }

    /// <summary>
    /// The normal form duplicates are compared in: Unicode NFKC (full-width letters and digits, ligatures and the
    /// ideographic space become their plain forms), lower case, every run of white space one space, trimmed. Two
    /// records whose texts differ only in case, spacing or such presentation forms are exact duplicates.
    /// </summary>
    public static string Normalize(string text)
    {
        string compatible = CompatibilityComposition.Normalize(text);
        char[] buffer = System.Buffers.ArrayPool<char>.Shared.Rent(compatible.Length);
        int length = 0;
        bool space = false;
        foreach (char c in compatible)
        {
            // ASCII and CJK ideographs, most of the text, take the short paths: CJK has neither case nor spaces.
            bool white = c < 0x80 ? c == ' ' || c is >= '\t' and <= '\r' : c is < '\u4E00' or > '\u9FFF' && char.IsWhiteSpace(c);
            if (white)
            {
                space = length > 0;
                continue;
            }
            if (space) buffer[length++] = ' ';
            space = false;
            buffer[length++] = c < 0x80 ? (char.IsAsciiLetterUpper(c) ? (char)(c | 0x20) : c) : c is >= '\u4E00' and <= '\u9FFF' ? c : char.ToLowerInvariant(c);
        }
        string normal = new(buffer, 0, length);
        System.Buffers.ArrayPool<char>.Shared.Return(buffer);
        return normal;
    }
}
