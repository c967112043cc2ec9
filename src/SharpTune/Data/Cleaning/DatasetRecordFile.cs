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

    /// <summary>Reads every record.</summary>
    /// <exception cref="InvalidDataException">The file is not JSON, or a record is not valid JSON or UTF-8, or is not a JSON object: the message names the file and record.</exception>
    public static DatasetRecordFile Read(string path) => Read<bool>(path, _ => true, out _);

    /// <summary>
    /// Reads every record and what <paramref name="select"/> takes from each (e.g. the text deduplication compares),
    /// so no record is parsed twice. JSON Lines records are parsed on all cores, so <paramref name="select"/> must be
    /// thread-safe; the first unreadable record in file order is the one reported.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not JSON, or a record is not valid JSON or UTF-8, or is not a JSON object: the message names the file and record.</exception>
    public static DatasetRecordFile Read<T>(string path, Func<JsonElement, T> select, out T[] selected)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path}: the data commands read JSON arrays (.json) and JSON Lines (.jsonl), not plain text");
        if (IsTable(path))
            throw new InvalidDataException($"{path}: this command writes its input's format, which must be JSON (.json) or JSON Lines (.jsonl); turn a CSV or Parquet file into one with `sharptune data convert`");
        byte[] bytes = File.ReadAllBytes(path);
        bool jsonArray = DatasetFiles.IsJsonArray(path, bytes);
        var records = new List<DatasetRecord>();
        var values = new List<T>();
        if (jsonArray)
        {
            foreach (var raw in DatasetFiles.Read(path, bytes, path))
            {
                var record = Accept(raw.Value, records.Count, raw.Location, raw.Problem);
                values.Add(select(raw.Value));
                records.Add(record);
            }
        }
        else
        {
            var lines = DatasetFiles.Lines(bytes, DatasetFiles.JsonLinesStart(path, bytes, path), path).ToList();
            var parsed = new DatasetRecord?[lines.Count];
            var taken = new T[lines.Count];
            var problems = new string?[lines.Count];
            Parallel.For(0, lines.Count, i =>
            {
                var (document, problem) = DatasetFiles.ParseLine(lines[i].Line);
                using (document)
                {
                    try
                    {
                        parsed[i] = Accept(document?.RootElement ?? default, i, lines[i].Location, problem);
                        taken[i] = select(document!.RootElement);
                    }
                    catch (InvalidDataException e)
                    {
                        problems[i] = e.Message;
                    }
                }
            });
            if (problems.FirstOrDefault(p => p is not null) is { } first) throw new InvalidDataException(first);
            records.AddRange(parsed!);
            values.AddRange(taken);
        }
        selected = [.. values];
        return new DatasetRecordFile(path, jsonArray, records);
    }

    /// <summary>
    /// Reads every record of a JSON, JSON Lines, CSV or Parquet file, CSV and Parquet rows as the JSON objects
    /// training makes of them (<see cref="DatasetFiles"/>). For `data convert`, which writes JSON or JSON Lines
    /// whatever it reads; the other commands write their input's format, so they read JSON only.
    /// </summary>
    /// <exception cref="InvalidDataException">The file cannot be read, or a record or row cannot: the message names the file, record or row, and field.</exception>
    public static DatasetRecordFile ReadAnyFormat(string path)
    {
        if (!IsTable(path)) return Read(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        var records = new List<DatasetRecord>();
        foreach (var raw in DatasetFiles.Read(path, path))
            records.Add(Accept(raw.Value, records.Count, raw.Location, raw.Problem));
        return new DatasetRecordFile(path, jsonArray: false, records);
    }

    private static bool IsTable(string path) =>
        path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);

    private static DatasetRecord Accept(JsonElement value, int index, string location, string? problem)
    {
        if (problem is not null) throw new InvalidDataException($"{location}: {problem}");
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{location}: a record must be a JSON object, got {JsonKinds.Describe(value)}");
        return new DatasetRecord(index, location, JsonMarshal.GetRawUtf8Value(value).ToArray());
    }

    /// <summary>
    /// Writes <paramref name="records"/> (JSON texts) to <paramref name="path"/> atomically, in this file's format
    /// unless <paramref name="jsonArray"/> says otherwise: a JSON array as LLaMA-Factory's files are laid out (one
    /// record per element, two-space indent), or one record per line.
    /// </summary>
    public void Write(string path, IEnumerable<byte[]> records, bool? jsonArray = null)
    {
        CheckNotInput(path);
        Write(path, jsonArray ?? JsonArray, records);
    }

    /// <summary>Writes records (JSON texts) atomically as a JSON array laid out as LLaMA-Factory's files are, or as JSON Lines.</summary>
    public static void Write(string path, bool jsonArray, IEnumerable<byte[]> records) =>
        AtomicFile.Write(path, stream =>
        {
            bool first = true;
            if (jsonArray) stream.Write("["u8);
            foreach (byte[] json in records)
            {
                if (jsonArray) stream.Write(first ? "\n  "u8 : ",\n  "u8);
                stream.Write(json);
                if (!jsonArray) stream.Write("\n"u8);
                first = false;
            }
            if (jsonArray) stream.Write(first ? "]\n"u8 : "\n]\n"u8);
        });

    /// <summary>The input is never modified in place: refuses an output path that is the input file.</summary>
    public void CheckNotInput(string path)
    {
        if (string.Equals(System.IO.Path.GetFullPath(path), System.IO.Path.GetFullPath(Path), StringComparison.Ordinal))
            throw new ArgumentException($"{path} is the input file; the data commands never modify their input: write to another file");
    }
}
