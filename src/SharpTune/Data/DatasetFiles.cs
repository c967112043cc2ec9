using System.Text;
using System.Runtime.InteropServices;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>
/// One raw record and where it is, e.g. <c>alpaca_zh_demo.json: record 17</c> or <c>chat.jsonl: line 5</c>; or, when
/// the record cannot even be read (invalid UTF-8, a JSON Lines line that is not JSON), the reason in
/// <paramref name="Problem"/>, so that lenient loading can skip it like any other malformed record.
/// </summary>
internal readonly record struct RawRecord(JsonElement Value, string Location, string? Problem = null);

/// <summary>
/// Reads a registered dataset's files: a JSON file holding an array of records (or, as Hugging Face's json loader
/// accepts, one record per line), a JSON Lines file, a plain text file (a record <c>{"text": line}</c> per line, as
/// Hugging Face's text loader reads it), or a folder of such files (all of them, by name).
/// </summary>
internal static class DatasetFiles
{
    private static readonly string[] Extensions = [".json", ".jsonl", ".txt"];

    /// <summary>
    /// The files of an entry as (full path, name shown in messages: the path relative to dataset_dir). With a
    /// <see cref="DatasetRegistry.ConfinedTo"/> root, every file must resolve (links followed) inside it.
    /// </summary>
    public static IReadOnlyList<(string Path, string Display)> Resolve(DatasetRegistry registry, DatasetEntry entry)
    {
        string path = Path.Combine(registry.DatasetDir, entry.FileName);
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new FileNotFoundException($"dataset '{entry.Name}': folder '{path}' holds no files", path);
            registry.CheckConfined(entry, [path, .. files]);
            foreach (string file in files) CheckExtension(entry, file);
            return files.Select(f => (f, Path.Combine(entry.FileName, Path.GetFileName(f)))).ToList();
        }
        registry.CheckConfined(entry, [path]);
        if (!File.Exists(path))
            throw new FileNotFoundException($"dataset '{entry.Name}': '{path}' does not exist", path);
        CheckExtension(entry, path);
        return [(path, entry.FileName)];
    }

    /// <summary>
    /// The records of one file in order. Each yielded element is valid only until the next one is requested (the
    /// document behind it is released per file or line). A record that cannot be read comes with its
    /// <see cref="RawRecord.Problem"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">A JSON array file is not valid JSON, or a .json file holds one object rather than records.</exception>
    public static IEnumerable<RawRecord> Read(string path, string display)
    {
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)) return ReadText(path, display);
        return Read(path, File.ReadAllBytes(path), display);
    }

    /// <summary>The records of a .json or .jsonl file already read into <paramref name="bytes"/>, as <see cref="Read(string, string)"/> reads them.</summary>
    public static IEnumerable<RawRecord> Read(string path, byte[] bytes, string display) =>
        IsJsonArray(path, bytes)
            ? ReadArray(bytes.AsMemory(Utf8Validation.BomLength(bytes)), display)
            : ReadLines(bytes, JsonLinesStart(path, bytes, display), display);

    /// <summary>Where the records of a file that is not a JSON array start (after any BOM), read as JSON Lines.</summary>
    /// <exception cref="InvalidDataException">A .json file holds one JSON object.</exception>
    public static int JsonLinesStart(string path, byte[] bytes, string display)
    {
        int start = Utf8Validation.BomLength(bytes);
        int first = FirstContentByte(bytes);
        // One object in a .json file is neither a list of records nor (when it spans lines) JSON Lines; taking it as
        // a one-record dataset would silently train on one example.
        if (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) && first < bytes.Length && bytes[first] == (byte)'{'
            && IsOneJsonValue(bytes.AsMemory(start)))
            throw new InvalidDataException(
                $"{display}: holds a single JSON object, not a list of records: write the records as a JSON array ([{{...}}, ...]) or one per line in a .jsonl file");
        return start;
    }

    /// <summary>Whether <see cref="Read(string, byte[], string)"/> takes the file as one JSON array of records (otherwise as JSON Lines).</summary>
    public static bool IsJsonArray(string path, ReadOnlySpan<byte> bytes)
    {
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) return false;
        int first = FirstContentByte(bytes);
        return first < bytes.Length && bytes[first] == (byte)'[';
    }

    /// <summary>The index of the first byte after the BOM and JSON whitespace (the length when there is none).</summary>
    private static int FirstContentByte(ReadOnlySpan<byte> bytes)
    {
        int first = Utf8Validation.BomLength(bytes);
        while (first < bytes.Length && bytes[first] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') first++;
        return first;
    }

    private static bool IsOneJsonValue(ReadOnlyMemory<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Which record of a JSON array a syntax error is in or after, e.g. "in record 3": the line alone does not say.</summary>
    private static string RecordOfError(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        int started = 0;
        bool inside = false;
        try
        {
            while (reader.Read())
            {
                if (reader.CurrentDepth != 1) continue;
                if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray) inside = false;
                else
                {
                    started++;
                    inside = reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray;
                }
            }
        }
        catch (JsonException)
        {
            // The reader stops where JsonDocument did.
        }
        return started == 0 ? "before the first record" : inside ? $"in record {started - 1}" : $"after record {started - 1}";
    }

    private static IEnumerable<RawRecord> ReadArray(ReadOnlyMemory<byte> json, string display)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{display}: invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {JsonKinds.Reason(e)} ({RecordOfError(json.Span)})", e);
        }
        using (doc)
        {
            int index = 0;
            foreach (var record in doc.RootElement.EnumerateArray())
            {
                string location = $"{display}: record {index++}";
                // System.Text.Json checks a string's UTF-8 only when it is read; checking the record's bytes here names it.
                int invalid = Utf8Validation.FirstInvalidByte(JsonMarshal.GetRawUtf8Value(record));
                yield return invalid < 0
                    ? new RawRecord(record, location)
                    : new RawRecord(default, location, $"invalid UTF-8 at byte {invalid + 1} of the record");
            }
        }
    }

    private static IEnumerable<RawRecord> ReadLines(byte[] bytes, int start, string display)
    {
        foreach (var (line, location) in Lines(bytes, start, display))
        {
            var (doc, problem) = ParseLine(line);
            if (doc is null)
            {
                yield return new RawRecord(default, location, problem);
                continue;
            }
            using (doc)
                yield return new RawRecord(doc.RootElement, location);
        }
    }

    /// <summary>The non-blank lines of a JSON Lines file (from byte <paramref name="start"/>, after any BOM), each with its location.</summary>
    public static IEnumerable<(ReadOnlyMemory<byte> Line, string Location)> Lines(byte[] bytes, int start, string display)
    {
        int lineNumber = 0;
        for (int position = start; position < bytes.Length;)
        {
            int newline = Array.IndexOf(bytes, (byte)'\n', position);
            int end = newline < 0 ? bytes.Length : newline;
            var line = bytes.AsMemory(position, end - position);
            position = end + 1;
            lineNumber++;
            if (line.Span.Trim(" \t\r"u8).IsEmpty) continue;
            yield return (line, $"{display}: line {lineNumber}");
        }
    }

    /// <summary>One JSON Lines record: its document (the caller disposes it), or why it cannot be read.</summary>
    public static (JsonDocument? Document, string? Problem) ParseLine(ReadOnlyMemory<byte> line)
    {
        int invalid = Utf8Validation.FirstInvalidByte(line.Span);
        if (invalid >= 0) return (null, $"invalid UTF-8 at byte {invalid + 1}");
        try
        {
            return (JsonDocument.Parse(line), null);
        }
        catch (JsonException e)
        {
            return (null, $"invalid JSON at byte {e.BytePositionInLine + 1}: {JsonKinds.Reason(e)} (JSON Lines: one record per line)");
        }
    }

    /// <summary>
    /// Hugging Face's text loader: the file read with universal newlines (\r\n and \r become \n), then split as
    /// Python's <c>str.splitlines()</c> splits (also at \v, \f, \x1c–\x1e, \x85, U+2028 and U+2029), one record per
    /// line, empty lines included, no record after a final line break.
    /// </summary>
    private static IEnumerable<RawRecord> ReadText(string path, string display)
    {
        string text;
        try
        {
            text = File.ReadAllText(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true));
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{display}: not valid UTF-8 text ({e.Message})", e);
        }
        int lineNumber = 0, start = 0;
        for (int i = 0; i <= text.Length; i++)
        {
            bool end = i == text.Length;
            if (!end && !IsLineBreak(text[i])) continue;
            if (end && start == text.Length) break;
            string line = text[start..i];
            if (!end && text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
            start = i + 1;
            var record = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["text"] = line });
            yield return new RawRecord(record, $"{display}: line {++lineNumber}");
        }
    }

    private static bool IsLineBreak(char c) =>
        c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    private static void CheckExtension(DatasetEntry entry, string file)
    {
        if (!Extensions.Any(ext => file.EndsWith(ext, StringComparison.OrdinalIgnoreCase)))
            throw new InvalidDataException(
                $"dataset '{entry.Name}': '{file}' is not a .json, .jsonl or .txt file; SharpTune reads JSON arrays, JSON Lines and plain text (convert csv/parquet/arrow data to JSON)");
    }
}
