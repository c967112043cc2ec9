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
        CheckJsonInput(path);
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
            var lines = DatasetFiles.Lines(bytes.AsMemory(DatasetFiles.JsonLinesStart(path, bytes, path)), path).ToList();
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

    /// <summary>Bytes of input read at a time by <see cref="ReadBatches"/>: a batch holds the records of about this many bytes.</summary>
    private const int BatchBytes = 1 << 20;

    /// <summary>
    /// Reads the records of a JSON array or JSON Lines file as <see cref="Read(string)"/> does (the same records,
    /// locations and errors), a batch at a time, so a step can stream a file larger than memory: each batch's records
    /// come from about <see cref="BatchBytes"/> of input, JSON Lines parsed on all cores, a JSON array's elements cut
    /// out by a <see cref="Utf8JsonReader"/> carried from block to block. A .json file that is not an array (JSON
    /// Lines under a .json name, or the single object refused with its own message) is read whole.
    /// </summary>
    /// <exception cref="InvalidDataException">As <see cref="Read(string)"/>, raised when the batch holding the problem is read.</exception>
    public static IEnumerable<IReadOnlyList<DatasetRecord>> ReadBatches(string path) =>
        ReadBatches(path, static _ => true).Select(batch => batch.Records);

    /// <summary>
    /// <see cref="ReadBatches(string)"/> with what <paramref name="select"/> takes from each record (e.g. the text
    /// deduplication compares), computed on all cores while the record is parsed, so no record is parsed twice;
    /// <paramref name="select"/> must be thread-safe.
    /// </summary>
    /// <exception cref="InvalidDataException">As <see cref="Read(string)"/>, raised when the batch holding the problem is read.</exception>
    public static IEnumerable<(IReadOnlyList<DatasetRecord> Records, T[] Selected)> ReadBatches<T>(string path, Func<JsonElement, T> select)
    {
        CheckJsonInput(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var block = new Block(stream);
        block.Fill();
        bool jsonArray = DatasetFiles.IsJsonArray(path, block.Bytes.Span);
        if (!jsonArray && !path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            var whole = Read(path, select, out T[] selected);
            yield return (whole.Records, selected);
            yield break;
        }
        block.Skip(Utf8Validation.BomLength(block.Bytes.Span));
        int index = 0;
        if (!jsonArray)
        {
            int linesBefore = 0;
            while (block.Bytes.Length > 0)
            {
                int cut = block.Bytes.Span.LastIndexOf((byte)'\n') + 1;
                if (cut == 0 && !block.AtEnd)
                {
                    block.Fill(grow: true);
                    continue;
                }
                var text = block.Bytes[..(block.AtEnd ? block.Bytes.Length : cut)];
                var batch = ParseLines(DatasetFiles.Lines(text, path, linesBefore).ToList(), index, select);
                index += batch.Records.Count;
                linesBefore += text.Span.Count((byte)'\n');
                block.Skip(text.Length);
                yield return batch;
                block.Fill();
            }
            yield break;
        }
        var state = new JsonReaderState();
        while (true)
        {
            List<(int Start, int End)> elements;
            int consumed;
            try
            {
                (elements, state, consumed) = CutElements(block.Bytes.Span, block.AtEnd, state);
            }
            catch (JsonException e)
            {
                // The whole-file reader words a syntax error with its line, byte and record; reading the file whole
                // once, on this failing path only, keeps that message.
                _ = DatasetFiles.Read(path, File.ReadAllBytes(path), path).Count();
                throw new InvalidDataException($"{path}: invalid JSON: {e.Message}", e);
            }
            if (elements.Count == 0 && consumed == 0)
            {
                if (block.AtEnd) yield break;
                block.Fill(grow: true);
                continue;
            }
            var batch = AcceptElements(block.Bytes, elements, index, path, select);
            index += batch.Records.Count;
            block.Skip(consumed);
            if (batch.Records.Count > 0) yield return batch;
            block.Fill();
        }
    }

    /// <summary>
    /// The top-level elements complete in <paramref name="json"/> (offsets), and the reader state and bytes consumed
    /// after the last complete token outside them (a partial element is read again with the next block).
    /// </summary>
    private static (List<(int Start, int End)>, JsonReaderState, int Consumed) CutElements(ReadOnlySpan<byte> json, bool final, JsonReaderState state)
    {
        var reader = new Utf8JsonReader(json, final, state);
        var elements = new List<(int, int)>();
        var (completeState, completeConsumed) = (state, 0);
        while (reader.Read())
        {
            if (reader.CurrentDepth == 0)
            {
                (completeState, completeConsumed) = (reader.CurrentState, (int)reader.BytesConsumed);
                continue;
            }
            int start = (int)reader.TokenStartIndex;
            if (!reader.TrySkip()) break;
            elements.Add((start, (int)reader.BytesConsumed));
            (completeState, completeConsumed) = (reader.CurrentState, (int)reader.BytesConsumed);
        }
        return (elements, completeState, completeConsumed);
    }

    /// <summary>A JSON array's elements, checked as the whole-file reader checks them, on all cores; the first problem in file order is raised.</summary>
    private static (IReadOnlyList<DatasetRecord> Records, T[] Selected) AcceptElements<T>(ReadOnlyMemory<byte> json, List<(int Start, int End)> elements, int firstIndex, string path,
        Func<JsonElement, T> select)
    {
        var records = new DatasetRecord[elements.Count];
        var selected = new T[elements.Count];
        var problems = new string?[elements.Count];
        Parallel.For(0, elements.Count, i =>
        {
            var bytes = json[elements[i].Start..elements[i].End];
            string location = $"{path}: record {firstIndex + i}";
            int invalid = Utf8Validation.FirstInvalidByte(bytes.Span);
            using var document = invalid < 0 ? JsonDocument.Parse(bytes) : null;
            try
            {
                records[i] = Accept(document?.RootElement ?? default, firstIndex + i, location,
                    invalid < 0 ? null : $"invalid UTF-8 at byte {invalid + 1} of the record");
                selected[i] = select(document!.RootElement);
            }
            catch (InvalidDataException e)
            {
                problems[i] = e.Message;
            }
        });
        if (problems.FirstOrDefault(p => p is not null) is { } first) throw new InvalidDataException(first);
        return (records, selected);
    }

    /// <summary>JSON Lines records parsed on all cores; the first unreadable one in file order is raised.</summary>
    private static (IReadOnlyList<DatasetRecord> Records, T[] Selected) ParseLines<T>(List<(ReadOnlyMemory<byte> Line, string Location)> lines, int firstIndex,
        Func<JsonElement, T> select)
    {
        var records = new DatasetRecord[lines.Count];
        var selected = new T[lines.Count];
        var problems = new string?[lines.Count];
        Parallel.For(0, lines.Count, i =>
        {
            var (document, problem) = DatasetFiles.ParseLine(lines[i].Line);
            using (document)
            {
                try
                {
                    records[i] = Accept(document?.RootElement ?? default, firstIndex + i, lines[i].Location, problem);
                    selected[i] = select(document!.RootElement);
                }
                catch (InvalidDataException e)
                {
                    problems[i] = e.Message;
                }
            }
        });
        if (problems.FirstOrDefault(p => p is not null) is { } first) throw new InvalidDataException(first);
        return (records, selected);
    }

    /// <summary>The unread part of a file held in a buffer: filled up to <see cref="BatchBytes"/>, grown while one record is longer.</summary>
    private sealed class Block(Stream stream)
    {
        private byte[] buffer = new byte[BatchBytes];
        private int begin, filled;

        public bool AtEnd { get; private set; }

        public ReadOnlyMemory<byte> Bytes => buffer.AsMemory(begin, filled - begin);

        public void Skip(int count) => begin += count;

        /// <summary>Moves the unread bytes to the front and reads until the buffer is full (doubled first with <paramref name="grow"/>) or the file ends.</summary>
        public void Fill(bool grow = false)
        {
            if (grow) Array.Resize(ref buffer, buffer.Length * 2);
            Buffer.BlockCopy(buffer, begin, buffer, 0, filled - begin);
            (filled, begin) = (filled - begin, 0);
            while (!AtEnd && filled < buffer.Length)
            {
                int read = stream.Read(buffer, filled, buffer.Length - filled);
                if (read == 0) AtEnd = true;
                filled += read;
            }
        }
    }

    /// <summary>
    /// The records of a JSON, JSON Lines, CSV or Parquet file in batches: JSON streamed (<see cref="ReadBatches(string)"/>),
    /// CSV and Parquet rows, as the JSON objects training makes of them (<see cref="DatasetFiles"/>), streamed too (a
    /// CSV record at a time, a Parquet row group at a time) and batched by about <see cref="BatchBytes"/> of records' JSON. For `data convert`, which writes JSON or JSON Lines whatever it reads; the other commands write their
    /// input's format, so they read JSON only. Each enumeration reads the file again.
    /// </summary>
    /// <exception cref="InvalidDataException">The file cannot be read, or a record or row cannot: the message names the file, record or row, and field.</exception>
    public static IEnumerable<IReadOnlyList<DatasetRecord>> ReadBatchesAnyFormat(string path)
    {
        if (!IsTable(path)) return ReadBatches(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        return ReadTable(path);

        static IEnumerable<IReadOnlyList<DatasetRecord>> ReadTable(string path)
        {
            var records = new List<DatasetRecord>();
            int index = 0, bytes = 0;
            foreach (var raw in DatasetFiles.Read(path, path))
            {
                var record = Accept(raw.Value, index++, raw.Location, raw.Problem);
                records.Add(record);
                bytes += record.Json.Length;
                if (bytes < BatchBytes) continue;
                yield return records;
                (records, bytes) = ([], 0);
            }
            if (records.Count > 0) yield return records;
        }
    }

    /// <summary>The input of a command writing its input's format: a JSON array or JSON Lines file that exists.</summary>
    /// <exception cref="FileNotFoundException">It does not exist.</exception>
    /// <exception cref="InvalidDataException">It is plain text, CSV or Parquet.</exception>
    public static void CheckJsonInput(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
        if (path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path}: the data commands read JSON arrays (.json) and JSON Lines (.jsonl), not plain text");
        if (IsTable(path))
            throw new InvalidDataException($"{path}: this command writes its input's format, which must be JSON (.json) or JSON Lines (.jsonl); turn a CSV or Parquet file into one with `sharptune data convert`");
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
            var writer = new RecordWriter(stream, jsonArray);
            foreach (byte[] json in records) writer.Add(json);
            writer.End();
        });

    /// <summary>Whether the file is read as a JSON array (as <see cref="Read(string)"/> takes it), looking only at its first bytes.</summary>
    public static bool IsJsonArray(string path)
    {
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) return false;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 12);
        var prefix = new List<byte>();
        for (int b = stream.ReadByte(); b >= 0; b = stream.ReadByte())
        {
            prefix.Add((byte)b);
            if (prefix.Count > 3 && b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) break;
        }
        return DatasetFiles.IsJsonArray(path, prefix.ToArray());
    }

    /// <summary>
    /// Writes records (JSON texts) one by one: a JSON array as LLaMA-Factory's files are laid out (one record per
    /// element, two-space indent), or one record per line.
    /// </summary>
    public sealed class RecordWriter
    {
        private readonly Stream stream;
        private readonly bool jsonArray;
        private bool first = true;

        public RecordWriter(Stream stream, bool jsonArray)
        {
            (this.stream, this.jsonArray) = (stream, jsonArray);
            if (jsonArray) stream.Write("["u8);
        }

        public void Add(byte[] json)
        {
            if (jsonArray) stream.Write(first ? "\n  "u8 : ",\n  "u8);
            stream.Write(json);
            if (!jsonArray) stream.Write("\n"u8);
            first = false;
        }

        /// <summary>Closes the array (nothing for JSON Lines).</summary>
        public void End()
        {
            if (jsonArray) stream.Write(first ? "]\n"u8 : "\n]\n"u8);
        }
    }

    /// <summary>The input is never modified in place: refuses an output path that is the input file.</summary>
    public void CheckNotInput(string path) => CheckNotInput(Path, path);

    /// <summary>Refuses an output <paramref name="path"/> that is the file <paramref name="input"/>.</summary>
    public static void CheckNotInput(string input, string path)
    {
        if (string.Equals(System.IO.Path.GetFullPath(path), System.IO.Path.GetFullPath(input), StringComparison.Ordinal))
            throw new ArgumentException($"{path} is the input file; the data commands never modify their input: write to another file");
    }
}
