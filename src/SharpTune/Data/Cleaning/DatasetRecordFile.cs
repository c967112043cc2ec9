using System.Runtime.InteropServices;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data.Cleaning;

/// <summary>One record of a dataset file: its position (0-based), where it is for messages, and its JSON text exactly as the file holds it.</summary>
public sealed record DatasetRecord(int Index, string Location, byte[] Json)
{
    /// <summary>Parses <see cref="Json"/> (already known to be valid); dispose the document when done.</summary>
    public JsonDocument Parse() => JsonDocument.Parse(Json);
}

/// <summary>
/// A dataset file read for the `sharptune data` commands: a JSON array of records or JSON Lines, read by
/// <see cref="DatasetFiles"/> as training reads it, every record kept as its exact JSON text, so records written back
/// unchanged are byte for byte what the input held. Written back in the same format, atomically.
/// </summary>
public sealed class DatasetRecordFile
{
    private DatasetRecordFile(string path, bool jsonArray, IReadOnlyList<DatasetRecord> records)
    {
        Path = path;
        JsonArray = jsonArray;
        Records = records;
    }

    public string Path { get; }

    /// <summary>True for a JSON array file, false for JSON Lines.</summary>
    public bool JsonArray { get; }

    public IReadOnlyList<DatasetRecord> Records { get; }

    /// <summary>
    /// Reads every record, calling <paramref name="visit"/> with each parsed record (valid only during the call) so a
    /// command reads each record's fields without parsing it twice.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not JSON, or a record is not valid JSON or UTF-8, or is not a JSON object: the message names the file and record.</exception>
    public static DatasetRecordFile Read(string path, Action<DatasetRecord, JsonElement>? visit = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path}: the data commands read JSON arrays (.json) and JSON Lines (.jsonl), not plain text");
        byte[] bytes = File.ReadAllBytes(path);
        var records = new List<DatasetRecord>();
        foreach (var raw in DatasetFiles.Read(path, bytes, path))
        {
            if (raw.Problem is not null) throw new InvalidDataException($"{raw.Location}: {raw.Problem}");
            if (raw.Value.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{raw.Location}: a record must be a JSON object, got {JsonKinds.Describe(raw.Value)}");
            var record = new DatasetRecord(records.Count, raw.Location, JsonMarshal.GetRawUtf8Value(raw.Value).ToArray());
            visit?.Invoke(record, raw.Value);
            records.Add(record);
        }
        return new DatasetRecordFile(path, DatasetFiles.IsJsonArray(path, bytes), records);
    }

    /// <summary>
    /// Writes <paramref name="records"/> (JSON texts) to <paramref name="path"/> in this file's format, atomically: a
    /// JSON array as LLaMA-Factory's files are laid out (one record per element, two-space indent), or one record per line.
    /// </summary>
    public void Write(string path, IEnumerable<byte[]> records)
    {
        CheckNotInput(path);
        AtomicFile.Write(path, stream =>
        {
            bool first = true;
            if (JsonArray) stream.Write("["u8);
            foreach (byte[] json in records)
            {
                if (JsonArray) stream.Write(first ? "\n  "u8 : ",\n  "u8);
                stream.Write(json);
                if (!JsonArray) stream.Write("\n"u8);
                first = false;
            }
            if (JsonArray) stream.Write(first ? "]\n"u8 : "\n]\n"u8);
        });
    }

    /// <summary>The input is never modified in place: refuses an output path that is the input file.</summary>
    public void CheckNotInput(string path)
    {
        if (string.Equals(System.IO.Path.GetFullPath(path), System.IO.Path.GetFullPath(Path), StringComparison.Ordinal))
            throw new ArgumentException($"{path} is the input file; the data commands never modify their input: write to another file");
    }
}
