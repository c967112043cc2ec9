using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>One raw record and where it is, e.g. <c>alpaca_zh_demo.json: record 17</c> or <c>chat.jsonl: line 5</c>.</summary>
internal readonly record struct RawRecord(JsonElement Value, string Location);

/// <summary>
/// Reads a registered dataset's files: a JSON file holding an array of records (or, as Hugging Face's json loader
/// accepts, one record per line), a JSON Lines file, or a folder of such files (all of them, by name).
/// </summary>
internal static class DatasetFiles
{
    private static readonly string[] Extensions = [".json", ".jsonl"];

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

    private static void CheckExtension(DatasetEntry entry, string file)
    {
        if (!Extensions.Any(ext => file.EndsWith(ext, StringComparison.OrdinalIgnoreCase)))
            throw new InvalidDataException(
                $"dataset '{entry.Name}': '{file}' is not a .json or .jsonl file; SharpTune reads JSON arrays and JSON Lines (convert csv/parquet/arrow data to JSON)");
    }
}
