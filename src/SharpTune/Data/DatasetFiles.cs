using System.Buffers;
using System.Collections;
using System.Globalization;
using System.Text;
using System.Runtime.InteropServices;
using System.Text.Json;
using Parquet;
using Parquet.Serialization;
using SharpTune.Hub;
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
/// Hugging Face's text loader reads it), a CSV file (RFC 4180, a header row naming the columns), a Parquet file, or
/// a folder of such files (all of them, by name). CSV and Parquet rows become JSON objects for the converters.
/// </summary>
internal static class DatasetFiles
{
    private static readonly string[] Extensions = [".json", ".jsonl", ".txt", ".csv", ".parquet"];

    /// <summary>
    /// The files of an entry as (full path, name shown in messages: the path relative to dataset_dir, or REPO/PATH
    /// for a Hub dataset, fetched into the cache of its hub, Hugging Face's or ModelScope's, as <see cref="HubSettings.For"/> reads it).
    /// With a <see cref="DatasetRegistry.ConfinedTo"/> root, every file must resolve (links followed) inside it, so
    /// a confined registry reads no Hub dataset.
    /// </summary>
    public static IReadOnlyList<(string Path, string Display)> Resolve(DatasetRegistry registry, DatasetEntry entry)
    {
        if (entry.HubSource is { } hub)
        {
            if (registry.ConfinedTo is not null)
                throw new InvalidDataException($"{entry.Where}: it is read from {hub.Key} '{hub.RepoId}', but this server confines data files to '{registry.ConfinedTo}'");
            return HubDatasetFiles.Resolve(entry, hub, HubSettings.For(hub.Hub), Console.Error);
        }
        string fileName = entry.FileName!;
        string path = Path.Combine(registry.DatasetDir, fileName);
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new FileNotFoundException($"dataset '{entry.Name}': folder '{path}' holds no files", path);
            registry.CheckConfined(entry, [path, .. files]);
            foreach (string file in files) CheckExtension(entry, file);
            return files.Select(f => (f, Path.Combine(fileName, Path.GetFileName(f)))).ToList();
        }
        registry.CheckConfined(entry, [path]);
        if (!File.Exists(path))
            throw new FileNotFoundException($"dataset '{entry.Name}': '{path}' does not exist", path);
        CheckExtension(entry, path);
        return [(path, fileName)];
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
        if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) return ReadCsv(path, display);
        if (path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase)) return ReadParquet(path, display);
        return Read(path, File.ReadAllBytes(path), display);
    }

    /// <summary>The records of a .json or .jsonl file already read into <paramref name="bytes"/>, as <see cref="Read(string, string)"/> reads them.</summary>
    public static IEnumerable<RawRecord> Read(string path, byte[] bytes, string display) =>
        IsJsonArray(path, bytes)
            ? ReadArray(bytes.AsMemory(Utf8Validation.BomLength(bytes)), display)
            : ReadLines(bytes.AsMemory(JsonLinesStart(path, bytes, display)), display);

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

    private static IEnumerable<RawRecord> ReadLines(ReadOnlyMemory<byte> bytes, string display)
    {
        foreach (var (line, location) in Lines(bytes, display))
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

    /// <summary>
    /// The non-blank lines of JSON Lines text (after any BOM), each with its location; <paramref name="linesBefore"/>
    /// counts the lines of the file before <paramref name="bytes"/> when a file is read piece by piece.
    /// </summary>
    public static IEnumerable<(ReadOnlyMemory<byte> Line, string Location)> Lines(ReadOnlyMemory<byte> bytes, string display, int linesBefore = 0)
    {
        int lineNumber = linesBefore;
        for (int position = 0; position < bytes.Length;)
        {
            int newline = bytes.Span[position..].IndexOf((byte)'\n');
            int end = newline < 0 ? bytes.Length : position + newline;
            var line = bytes.Slice(position, end - position);
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
        string text = ReadUtf8(path, display);
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

    private static string ReadUtf8(string path, string display)
    {
        try
        {
            return File.ReadAllText(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true));
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{display}: not valid UTF-8 text ({e.Message})", e);
        }
    }

    /// <summary>
    /// A CSV file's rows as records <c>{"column": "value"}</c>, named "FILE: row N" with the header as row 1 (what a
    /// spreadsheet shows for one-line rows). Values stay text, as the converters read text (pandas would infer
    /// numbers); an empty cell is null, so a required column left empty is "missing", as pandas' NaN is to
    /// LLaMA-Factory. A row with more or fewer fields than the header cannot be read.
    /// </summary>
    private static IEnumerable<RawRecord> ReadCsv(string path, string display)
    {
        using var rows = CsvReader.ReadFile(path, display).GetEnumerator();
        if (!rows.MoveNext()) yield break;
        string[] header = rows.Current;
        for (int column = 0; column < header.Length; column++)
        {
            if (header[column].Length == 0)
                throw new InvalidDataException($"{display}: row 1 (the header): column {column + 1} has no name");
            if (Array.IndexOf(header, header[column]) != column)
                throw new InvalidDataException($"{display}: row 1 (the header): column {column + 1} repeats the name {MessageText.Quote(header[column])}");
        }
        for (int row = 2; rows.MoveNext(); row++)
        {
            string location = $"{display}: row {row}";
            string[] fields = rows.Current;
            if (fields.Length != header.Length)
            {
                yield return new RawRecord(default, location,
                    $"{fields.Length} field{(fields.Length == 1 ? "" : "s")}, but the header names {header.Length} columns ({string.Join(", ", header)})");
                continue;
            }
            var record = new Dictionary<string, string?>(header.Length, StringComparer.Ordinal);
            for (int column = 0; column < header.Length; column++)
                record[header[column]] = fields[column].Length == 0 ? null : fields[column];
            yield return new RawRecord(JsonSerializer.SerializeToElement(record), location);
        }
    }

    /// <summary>
    /// A Parquet file's rows as JSON records "FILE: record N" (from 0, as for JSON arrays): strings, numbers and
    /// booleans as themselves, lists as arrays and structs as objects (a sharegpt <c>conversations</c> column, a
    /// list of structs, becomes the array of message objects), dates and times as ISO 8601 text, nulls as null.
    /// Binary columns have no JSON form: a record holding one cannot be read.
    /// </summary>
    private static IEnumerable<RawRecord> ReadParquet(string path, string display)
    {
        int rowGroups = ReadParquetPart(path, display, static stream =>
        {
            var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
            int count = reader.RowGroupCount;
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return count;
        });
        int index = 0;
        // One row group at a time, so memory holds one group's rows whatever the file's size.
        for (int group = 0; group < rowGroups; group++)
        {
            var rows = ReadParquetPart(path, display, stream => ParquetSerializer.DeserializeUntypedAsync(stream, rowGroupIndex: group).GetAwaiter().GetResult());
            for (int i = 0; i < rows.Data.Count; i++, index++)
            {
                string location = $"{display}: record {index}";
                var buffer = new ArrayBufferWriter<byte>();
                string? problem = null;
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    writer.WriteStartObject();
                    foreach (var (column, value) in rows.Data[i])
                    {
                        writer.WritePropertyName(column);
                        if ((problem = WriteJson(writer, column, value)) is not null) break;
                    }
                    if (problem is null) writer.WriteEndObject();
                }
                if (problem is not null)
                {
                    yield return new RawRecord(default, location, problem);
                    continue;
                }
                using var doc = JsonDocument.Parse(buffer.WrittenMemory);
                yield return new RawRecord(doc.RootElement, location);
            }
        }
    }

    /// <summary>What <paramref name="read"/> reads from the Parquet file; any failure becomes an error naming the file.</summary>
    private static T ReadParquetPart<T>(string path, string display, Func<Stream, T> read)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return read(stream);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or FileNotFoundException or UnauthorizedAccessException))
        {
            throw new InvalidDataException($"{display}: not a readable Parquet file ({e.Message.ReplaceLineEndings(" ")})", e);
        }
    }

    /// <summary>Writes one Parquet value; returns why it has no JSON form (naming the column), or null.</summary>
    private static string? WriteJson(Utf8JsonWriter writer, string column, object? value)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case string s: writer.WriteStringValue(s); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case byte[]: return $"column '{column}' holds binary data, which has no text form (store text as a string column)";
            case DateTime or DateTimeOffset or DateOnly or TimeOnly or TimeSpan: writer.WriteStringValue(((IFormattable)value).ToString(value is TimeSpan ? "c" : "o", null)); break;
            case sbyte or byte or short or ushort or int or uint or long or ulong: writer.WriteRawValue(((IFormattable)value).ToString(null, CultureInfo.InvariantCulture)); break;
            case float or double or decimal:
                double number = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (!double.IsFinite(number)) return $"column '{column}' holds {number}, which JSON cannot hold";
                writer.WriteNumberValue(number);
                break;
            case IDictionary fields:
                writer.WriteStartObject();
                foreach (DictionaryEntry field in fields)
                {
                    writer.WritePropertyName((string)field.Key);
                    if (WriteJson(writer, $"{column}.{field.Key}", field.Value) is { } problem) return problem;
                }
                writer.WriteEndObject();
                break;
            case IEnumerable items:
                writer.WriteStartArray();
                int i = 0;
                foreach (object? item in items)
                {
                    if (WriteJson(writer, $"{column}[{i++}]", item) is { } problem) return problem;
                }
                writer.WriteEndArray();
                break;
            default: return $"column '{column}' holds a {value.GetType().Name}, which SharpTune cannot turn into JSON";
        }
        return null;
    }

    private static bool IsLineBreak(char c) =>
        c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    private static void CheckExtension(DatasetEntry entry, string file)
    {
        if (!Extensions.Any(ext => file.EndsWith(ext, StringComparison.OrdinalIgnoreCase)))
            throw new InvalidDataException(
                $"dataset '{entry.Name}': '{file}' is not a .json, .jsonl, .txt, .csv or .parquet file; SharpTune reads JSON arrays, JSON Lines, plain text, CSV and Parquet (convert arrow data to Parquet or JSON)");
    }
}
