using System.Text;
using System.Text.Json;

namespace SharpTune.Data;

/// <summary>One raw record and where it is, e.g. <c>alpaca_zh_demo.json: record 17</c> or <c>chat.jsonl: line 5</c>.</summary>
internal readonly record struct RawRecord(JsonElement Value, string Location);

/// <summary>
/// Reads a registered dataset's files: a JSON file holding an array of records (or, as Hugging Face's json loader
/// accepts, one record per line), a JSON Lines file, a plain text file (a record <c>{"text": line}</c> per line, as
/// Hugging Face's text loader reads it), or a folder of such files (all of them, by name).
/// </summary>
internal static class DatasetFiles
{
    private static readonly string[] Extensions = [".json", ".jsonl", ".txt"];

    /// <summary>The files of an entry as (full path, name shown in messages: the path relative to dataset_dir).</summary>
    public static IReadOnlyList<(string Path, string Display)> Resolve(string datasetDir, DatasetEntry entry)
    {
        string path = Path.Combine(datasetDir, entry.FileName);
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new FileNotFoundException($"dataset '{entry.Name}': folder '{path}' holds no files", path);
            foreach (string file in files) CheckExtension(entry, file);
            return files.Select(f => (f, Path.Combine(entry.FileName, Path.GetFileName(f)))).ToList();
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"dataset '{entry.Name}': '{path}' does not exist", path);
        CheckExtension(entry, path);
        return [(path, entry.FileName)];
    }

    /// <summary>
    /// The records of one file in order. Each yielded element is valid only until the next one is requested (the
    /// document behind it is released per file or line).
    /// </summary>
    /// <exception cref="InvalidDataException">The file (or a line of a JSON Lines file) is not valid JSON.</exception>
    public static IEnumerable<RawRecord> Read(string path, string display)
    {
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)) return ReadText(path, display);
        byte[] bytes = File.ReadAllBytes(path);
        int start = BomLength(bytes);
        int first = start;
        while (first < bytes.Length && bytes[first] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') first++;
        bool isArray = first < bytes.Length && bytes[first] == (byte)'['
            && !path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);
        return isArray ? ReadArray(bytes.AsMemory(start), display) : ReadLines(path, display);
    }

    internal static int BomLength(byte[] bytes) =>
        bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;

    private static IEnumerable<RawRecord> ReadArray(ReadOnlyMemory<byte> json, string display)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{display}: invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {JsonKinds.Reason(e)}", e);
        }
        using (doc)
        {
            int index = 0;
            foreach (var record in doc.RootElement.EnumerateArray())
                yield return new RawRecord(record, $"{display}: record {index++}");
        }
    }

    private static IEnumerable<RawRecord> ReadLines(string path, string display)
    {
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException(
                    $"{display}: line {lineNumber}: invalid JSON at byte {e.BytePositionInLine + 1}: {JsonKinds.Reason(e)} (JSON Lines: one record per line)", e);
            }
            using (doc)
                yield return new RawRecord(doc.RootElement, $"{display}: line {lineNumber}");
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
