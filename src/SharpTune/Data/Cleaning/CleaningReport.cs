using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// What a data command did, for the user to audit and undo: a count per reason, and one JSON line per removed or
/// changed record: <c>{"record": index, "location", "action": "removed"|"changed", "reason", "rule", ...details,
/// "original": the record as the input held it, on one line}</c>. Written atomically, like every output.
/// </summary>
public sealed class CleaningReport
{
    private readonly List<byte[]> lines = [];
    private readonly Action<byte[]>? sink;
    private readonly Dictionary<string, int> counts = [];
    private readonly List<string> reasonOrder = [];

    /// <param name="sink">Takes each line as it is added (a streamed step's report file or stdout); without one, lines are kept for <see cref="Write"/>.</param>
    public CleaningReport(Action<byte[]>? sink = null) => this.sink = sink;

    public int Entries { get; private set; }

    /// <summary>Adds one record's line; <paramref name="details"/> writes extra properties between "rule" and "original".</summary>
    public void Add(DatasetRecord record, string action, string reason, string rule, Action<Utf8JsonWriter>? details = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteNumber("record", record.Index);
            json.WriteString("location", record.Location);
            json.WriteString("action", action);
            json.WriteString("reason", reason);
            json.WriteString("rule", rule);
            details?.Invoke(json);
            // Re-written compactly: a JSON array's records span lines, and a report line must not.
            json.WritePropertyName("original");
            using (var original = record.Parse()) original.RootElement.WriteTo(json);
            json.WriteEndObject();
        }
        Entries++;
        if (sink is not null) sink(buffer.ToArray());
        else lines.Add(buffer.ToArray());
    }

    /// <summary>Counts one occurrence of <paramref name="reason"/> (a record removed, or a piece of a record replaced).</summary>
    public void Count(string reason)
    {
        if (!counts.TryAdd(reason, 1)) counts[reason]++;
        else reasonOrder.Add(reason);
    }

    /// <summary>The counts per reason, in the order reasons first occurred, e.g. <c>exact_duplicate 3, near_duplicate 1</c>; "nothing" when empty.</summary>
    public string CountsText() => reasonOrder.Count == 0 ? "nothing" : string.Join(", ", reasonOrder.Select(r => $"{r} {counts[r]}"));

    public IReadOnlyDictionary<string, int> Counts => counts;

    /// <summary>Writes the lines as JSONL, atomically.</summary>
    public void Write(string path) => AtomicFile.Write(path, WriteTo);

    public void WriteTo(Stream stream) => WriteTo(line =>
    {
        stream.Write(line);
        stream.Write("\n"u8);
    });

    /// <summary>Passes each kept line (without its line break) to <paramref name="sink"/>.</summary>
    public void WriteTo(Action<byte[]> sink)
    {
        foreach (byte[] line in lines) sink(line);
    }
}
