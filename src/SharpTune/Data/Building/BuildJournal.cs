using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data.Building;

/// <summary>
/// The job file of <c>sharptune data build</c>: JSON Lines, one line per completed teacher call,
/// <c>{"key": "CHUNK|STEP|VARIANT", "hash": sha256 of the request body, "reply": text}</c>, appended and flushed to
/// disk (fsync) before the call counts as done. A rerun reads it and sends only the calls it lacks, so a crash or
/// Ctrl+C loses at most the calls in flight. The hash covers everything sent (model, prompt with the chunk's text,
/// sampling settings): when a document, a prompt or a setting changed, the key's entry no longer matches, the call
/// is made again and its new line supersedes the old. A line cut short by a crash mid-append is dropped on reading.
/// </summary>
public sealed class BuildJournal : IDisposable
{
    /// <summary>The kill point after each appended line (<c>SHARPTUNE_FAULT=build-journal-appended:N</c>).</summary>
    public const string AppendedPoint = "build-journal-appended";

    private readonly Dictionary<string, (string Hash, string Reply)> entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> replies = new(StringComparer.Ordinal);
    private readonly FileStream stream;
    private readonly Lock gate = new();

    private BuildJournal(string path, FileStream stream)
    {
        Path = path;
        this.stream = stream;
    }

    public string Path { get; }

    /// <summary>Entries read from an earlier run.</summary>
    public int Recovered { get; private set; }

    /// <summary>Opens (or creates) the job file and reads what an earlier run completed.</summary>
    /// <exception cref="InvalidDataException">A complete line is not a journal entry: the message names the file and line.</exception>
    public static BuildJournal Open(string path)
    {
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        var journal = new BuildJournal(path, stream);
        try
        {
            journal.Read();
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return journal;
    }

    private void Read()
    {
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        int complete = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        int lineNumber = 0;
        foreach (string line in Encoding.UTF8.GetString(bytes, 0, complete).Split('\n'))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                string hash = root.GetProperty("hash").GetString()!, reply = root.GetProperty("reply").GetString()!;
                entries[root.GetProperty("key").GetString()!] = (hash, reply);
                replies[hash] = reply;
                Recovered++;
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"{Path}: line {lineNumber} is not a job-file entry ({e.Message}); delete the file to start the build afresh");
            }
        }
        // A line a crash cut short is no entry: cut it off so the next line starts clean.
        stream.SetLength(complete);
        stream.Seek(complete, SeekOrigin.Begin);
    }

    /// <summary>The SHA-256 (hex) of a request body, as the journal keys it.</summary>
    public static string Hash(string requestBody) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(requestBody)));

    /// <summary>
    /// What the journal knows of a call: the reply when <paramref name="key"/>'s entry has this hash, or another
    /// key's entry does (the same request, e.g. the same question in two chunks, is sent once); else whether
    /// <paramref name="key"/> has an entry with another hash (its inputs changed).
    /// </summary>
    public (string? Reply, bool Changed) Find(string key, string hash)
    {
        lock (gate)
        {
            bool keyKnown = entries.TryGetValue(key, out var entry);
            if (keyKnown && entry.Hash == hash) return (entry.Reply, false);
            if (replies.TryGetValue(hash, out string? reply)) return (reply, false);
            return (null, keyKnown);
        }
    }

    /// <summary>Appends one completed call and flushes it to disk before returning.</summary>
    public void Append(string key, string hash, string reply)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("key", key);
            json.WriteString("hash", hash);
            json.WriteString("reply", reply);
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        lock (gate)
        {
            stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
            stream.Flush(flushToDisk: true);
            entries[key] = (hash, reply);
            replies[hash] = reply;
            FaultInjection.Point(AppendedPoint);
        }
    }

    public void Dispose() => stream.Dispose();
}
