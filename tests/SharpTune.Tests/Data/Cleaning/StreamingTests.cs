using System.Text;
using System.Text.Json.Serialization;
using Parquet;
using Parquet.Serialization;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

/// <summary>
/// The streamed reading of clean and scrub (<see cref="DatasetRecordFile.ReadBatches"/>) against the whole-file reader
/// (<see cref="DatasetRecordFile.Read(string)"/>), the reference: the same records, locations, bytes and errors across
/// batch boundaries; and `data clean` on a file several times larger than the memory the process may use.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class StreamingTests : IDisposable
{
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    /// <summary>About 10 MB of records (several 1 MB batches), one of them over 5 MB (longer than a batch), in varied spacing.</summary>
    private static List<string> Records()
    {
        var records = new List<string>();
        for (int i = 0; i < 60_000; i++)
            records.Add(i == 30_000
                ? $"{{\"instruction\": \"long\", \"output\": \"{new string('x', 5 << 20)}\"}}"
                : $"{{\"instruction\":\"question {i} 问题\",  \"input\": \"\", \"output\": \"answer {i} {new string('a', i % 200)}\", \"n\": {i}}}");
        return records;
    }

    private static void AssertSameAsWholeFileRead(string path)
    {
        var whole = DatasetRecordFile.Read(path).Records;
        var streamed = DatasetRecordFile.ReadBatches(path).SelectMany(batch => batch).ToList();
        Assert.Equal(whole.Count, streamed.Count);
        for (int i = 0; i < whole.Count; i++)
        {
            Assert.Equal(whole[i].Index, streamed[i].Index);
            Assert.Equal(whole[i].Location, streamed[i].Location);
            Assert.True(whole[i].Json.AsSpan().SequenceEqual(streamed[i].Json), $"record {i} differs");
        }
    }

    [Fact]
    public void ReadBatches_JsonLines_GivesTheWholeFileReadsRecords()
    {
        var records = Records();
        // A BOM, blank lines (they count in line numbers), CRLF endings and no final line break.
        string text = "\uFEFF" + string.Join("", records.Select((r, i) => r + (i % 1000 == 0 ? "\r\n\n  \n" : "\n"))).TrimEnd('\n');
        string path = Path.Combine(dir.Path, "records.jsonl");
        File.WriteAllText(path, text, new UTF8Encoding(false));
        AssertSameAsWholeFileRead(path);
    }

    [Fact]
    public void ReadBatches_JsonArray_GivesTheWholeFileReadsRecords()
    {
        string path = Path.Combine(dir.Path, "records.json");
        File.WriteAllText(path, "\uFEFF [" + string.Join(" ,\n\t", Records()) + "\n] \n", new UTF8Encoding(false));
        AssertSameAsWholeFileRead(path);
        File.WriteAllText(Path.Combine(dir.Path, "empty.json"), "[ ]");
        AssertSameAsWholeFileRead(Path.Combine(dir.Path, "empty.json"));
    }

    public static TheoryData<string, string> BadTails => new()
    {
        { "bad.jsonl", "{\"instruction\": \"cut" },
        { "bad.jsonl", "[1, 2]" },
        { "bad.json", "{\"instruction\": \"cut" },
        { "bad.json", "[1, 2]" },
        { "bad.json", "{\"a\": 1}] trailing" },
    };

    [Theory]
    [MemberData(nameof(BadTails))]
    public void ReadBatches_AProblemInALaterBatch_IsReportedAsTheWholeFileReadReportsIt(string name, string bad)
    {
        var records = Records().Take(50_000).Append(bad);
        string path = Path.Combine(dir.Path, name);
        File.WriteAllText(path, name.EndsWith(".jsonl") ? string.Join("\n", records) + "\n" : "[" + string.Join(",\n", records) + "]");
        var expected = Assert.Throws<InvalidDataException>(() => DatasetRecordFile.Read(path));
        var streamed = Assert.Throws<InvalidDataException>(() => DatasetRecordFile.ReadBatches(path).Count());
        Assert.Equal(expected.Message, streamed.Message);
    }

    /// <summary>
    /// The CLI as its own process with its GC heap capped at 32 MB cleans a ~160 MB file (5 times the cap): it
    /// could not hold the file, its records or its output in memory. Every 7th record is too short (removed),
    /// every 10th of the rest holds a control character (changed).
    /// </summary>
    [Theory]
    [InlineData("big.jsonl")]
    [InlineData("big.json")]
    public void CleanCommand_StreamsAFileFiveTimesItsMemoryCap(string name)
    {
        const long cap = 32L << 20;
        string input = Path.Combine(dir.Path, name), output = Path.Combine(dir.Path, "out" + Path.GetExtension(name));
        string report = Path.Combine(dir.Path, "report.jsonl"), recipe = Path.Combine(dir.Path, "recipe.yaml");
        File.WriteAllText(recipe, "rules:\n  - control_characters\n  - text_length: {min: 10}\n");
        bool array = name.EndsWith(".json");
        int records = 0, removed = 0, changed = 0;
        using (var writer = new StreamWriter(input, false, new UTF8Encoding(false), 1 << 20))
        {
            if (array) writer.Write('[');
            string padding = new('p', 200);
            for (; writer.BaseStream.Position < 5 * cap; records++)
            {
                if (array && records > 0) writer.Write(",\n");
                if (records % 7 == 0)
                {
                    writer.Write("{\"instruction\": \"hi\", \"input\": \"\", \"output\": \"\"}");
                    removed++;
                }
                else
                {
                    bool control = records % 10 == 0;
                    if (control) changed++;
                    writer.Write($"{{\"instruction\": \"question {records}\", \"input\": \"\", \"output\": \"{(control ? "\\u0007" : "")}answer {padding}\"}}");
                }
                if (!array) writer.Write('\n');
            }
            if (array) writer.Write("]\n");
        }

        var run = CliProcess.Run(["data", "clean", input, "--out", output, "--report", report, "--recipe", recipe],
            new Dictionary<string, string?> { ["DOTNET_GCHeapHardLimit"] = $"0x{cap:X}" });

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"clean: {records} records read, {records - removed} written, {removed} removed, {changed} changed", run.Stdout);
        Assert.True(new FileInfo(input).Length > 5 * cap);
        Assert.True(new FileInfo(output).Length > 4 * cap);
        Assert.Equal(removed + changed, File.ReadLines(report).Count());
    }

    /// <summary>
    /// The CLI as its own process with its GC heap capped at 32 MB deduplicates a ~160 MB file (5 times the cap): it
    /// keeps only the index of hashes, not the records. Every 5th record repeats the record 3 before it in upper case
    /// with doubled spaces (an exact duplicate once normalised); the kept file is every other record, in input order.
    /// </summary>
    [Theory]
    [InlineData("big.jsonl")]
    [InlineData("big.json")]
    public void DedupCommand_StreamsAFileFiveTimesItsMemoryCap(string name)
    {
        const long cap = 32L << 20;
        string input = Path.Combine(dir.Path, name), output = Path.Combine(dir.Path, "out" + Path.GetExtension(name));
        string report = Path.Combine(dir.Path, "report.jsonl");
        bool array = name.EndsWith(".json");
        // ~4 KB records: the index holds one fingerprint per record, so with ~1 KB records (150,000 of them) it alone
        // came near the cap and the run sometimes ran out of memory; the index, not the file, grows with records.
        string padding = new('p', 4000);
        string Record(int i) => $"{{\"instruction\": \"question {i}\", \"input\": \"\", \"output\": \"answer {padding}\"}}";
        int records = 0, removed = 0;
        var kept = new List<int>();
        using (var writer = new StreamWriter(input, false, new UTF8Encoding(false), 1 << 20))
        {
            if (array) writer.Write('[');
            for (; writer.BaseStream.Position < 5 * cap; records++)
            {
                if (array && records > 0) writer.Write(",\n");
                if (records % 5 == 4)
                {
                    writer.Write(Record(records - 3).ToUpperInvariant().Replace(" ", "  "));
                    removed++;
                }
                else
                {
                    writer.Write(Record(records));
                    kept.Add(records);
                }
                if (!array) writer.Write('\n');
            }
            if (array) writer.Write("]\n");
        }

        var run = CliProcess.Run(["data", "dedup", input, "--out", output, "--report", report],
            new Dictionary<string, string?> { ["DOTNET_GCHeapHardLimit"] = $"0x{cap:X}" });

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"dedup: {records} records read, {records - removed} written, {removed} removed", run.Stdout);
        Assert.Equal(removed, File.ReadLines(report).Count());
        var written = DatasetRecordFile.ReadBatches(output).SelectMany(batch => batch).Select(r => Encoding.UTF8.GetString(r.Json));
        Assert.True(written.SequenceEqual(kept.Select(Record)), "the kept records are not every record but the duplicates, in input order");
    }

    /// <summary>
    /// The CLI as its own process with its GC heap capped at 32 MB converts a ~160 MB alpaca file (5 times the cap) to
    /// sharegpt in the other container format: the format is detected and the records converted in streamed passes.
    /// Every 9th record holds a system prompt, so the entry maps the system column.
    /// </summary>
    [Theory]
    [InlineData("big.jsonl", "out.json")]
    [InlineData("big.json", "out.jsonl")]
    public void ConvertCommand_StreamsAFileFiveTimesItsMemoryCap(string name, string outName)
    {
        const long cap = 32L << 20;
        string input = Path.Combine(dir.Path, name), output = Path.Combine(dir.Path, outName);
        bool array = name.EndsWith(".json");
        string padding = new('p', 1000);
        int records = 0;
        using (var writer = new StreamWriter(input, false, new UTF8Encoding(false), 1 << 20))
        {
            if (array) writer.Write('[');
            for (; writer.BaseStream.Position < 5 * cap; records++)
            {
                if (array && records > 0) writer.Write(",\n");
                string system = records % 9 == 0 ? ", \"system\": \"be brief\"" : "";
                writer.Write($"{{\"instruction\": \"question {records}\", \"input\": \"\", \"output\": \"answer {padding}\"{system}}}");
                if (!array) writer.Write('\n');
            }
            if (array) writer.Write("]\n");
        }

        var run = CliProcess.Run(["data", "convert", input, "--out", output, "--to", "sharegpt"],
            new Dictionary<string, string?> { ["DOTNET_GCHeapHardLimit"] = $"0x{cap:X}" });

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"convert alpaca -> sharegpt: {records} records read, {records} written, 0 removed", run.Stdout);
        Assert.Contains("\"columns\":{\"messages\":\"conversations\",\"system\":\"system\"}", run.Stderr);
        int i = 0;
        foreach (var record in DatasetRecordFile.ReadBatches(output).SelectMany(batch => batch))
        {
            string system = i % 9 == 0 ? ",\"system\":\"be brief\"" : "";
            Assert.Equal($"{{\"conversations\":[{{\"from\":\"human\",\"value\":\"question {i}\"}},{{\"from\":\"gpt\",\"value\":\"answer {padding}\"}}]{system}}}",
                Encoding.UTF8.GetString(record.Json));
            i++;
        }
        Assert.Equal(records, i);
    }

    /// <summary>
    /// The CLI as its own process with its GC heap capped at 32 MB converts a ~160 MB CSV file (5 times the cap) to
    /// sharegpt: rows are read one at a time. Every 5th row's instruction is quoted, spans two lines (CRLF) and holds
    /// a comma and doubled quotes; every 9th has a system prompt (the others leave that cell empty: missing).
    /// </summary>
    [Fact]
    public void ConvertCommand_StreamsACsvFileFiveTimesItsMemoryCap()
    {
        const long cap = 32L << 20;
        string input = Path.Combine(dir.Path, "big.csv"), output = Path.Combine(dir.Path, "out.jsonl");
        string padding = new('p', 1000);
        int records = 0;
        using (var writer = new StreamWriter(input, false, new UTF8Encoding(true), 1 << 20))
        {
            writer.Write("instruction,input,output,system\r\n");
            for (; writer.BaseStream.Position < 5 * cap; records++)
            {
                string instruction = records % 5 == 0 ? $"\"question {records},\r\nsaid \"\"twice\"\"\"" : $"question {records}";
                writer.Write($"{instruction},,answer {padding},{(records % 9 == 0 ? "be brief" : "")}\r\n");
            }
        }

        var run = CliProcess.Run(["data", "convert", input, "--out", output, "--to", "sharegpt"],
            new Dictionary<string, string?> { ["DOTNET_GCHeapHardLimit"] = $"0x{cap:X}" });

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"convert alpaca -> sharegpt: {records} records read, {records} written, 0 removed", run.Stdout);
        int i = 0;
        foreach (var record in DatasetRecordFile.ReadBatches(output).SelectMany(batch => batch))
        {
            string question = i % 5 == 0 ? $"question {i},\\r\\nsaid \\\"twice\\\"" : $"question {i}";
            string system = i % 9 == 0 ? ",\"system\":\"be brief\"" : "";
            Assert.Equal($"{{\"conversations\":[{{\"from\":\"human\",\"value\":\"{question}\"}},{{\"from\":\"gpt\",\"value\":\"answer {padding}\"}}]{system}}}",
                Encoding.UTF8.GetString(record.Json));
            i++;
        }
        Assert.Equal(records, i);
    }

    public sealed class AlpacaRow
    {
        [JsonPropertyName("instruction")] public string? Instruction { get; set; }
        [JsonPropertyName("input")] public string? Input { get; set; }
        [JsonPropertyName("output")] public string? Output { get; set; }
    }

    /// <summary>
    /// The CLI as its own process with its GC heap capped at 32 MB converts a Parquet file of 32 row groups holding
    /// ~160 MB of text (5 times the cap; the file itself is small, as repeated text compresses) to sharegpt: rows are
    /// read one row group at a time.
    /// </summary>
    [Fact]
    public async Task ConvertCommand_StreamsAParquetFileOfRowGroupsFiveTimesItsMemoryCap()
    {
        const long cap = 32L << 20;
        const int groups = 160, rowsPerGroup = 1_000;
        string input = Path.Combine(dir.Path, "big.parquet"), output = Path.Combine(dir.Path, "out.jsonl");
        string padding = new('p', 1000);
        for (int group = 0; group < groups; group++)
        {
            var rows = Enumerable.Range(group * rowsPerGroup, rowsPerGroup)
                .Select(i => new AlpacaRow { Instruction = $"question {i}", Output = $"answer {i} {padding}" });
            await ParquetSerializer.SerializeAsync(rows, input, new ParquetOptions { Append = group > 0 });
        }
        await using (var reader = await ParquetReader.CreateAsync(input))
            Assert.Equal(groups, reader.RowGroupCount);

        var run = CliProcess.Run(["data", "convert", input, "--out", output, "--to", "sharegpt"],
            new Dictionary<string, string?> { ["DOTNET_GCHeapHardLimit"] = $"0x{cap:X}" });

        Assert.True(run.ExitCode == 0, run.Stderr);
        const int records = groups * rowsPerGroup;
        Assert.Contains($"convert alpaca -> sharegpt: {records} records read, {records} written, 0 removed", run.Stdout);
        int i = 0;
        foreach (var record in DatasetRecordFile.ReadBatches(output).SelectMany(batch => batch))
        {
            Assert.Equal($"{{\"conversations\":[{{\"from\":\"human\",\"value\":\"question {i}\"}},{{\"from\":\"gpt\",\"value\":\"answer {i} {padding}\"}}]}}",
                Encoding.UTF8.GetString(record.Json));
            i++;
        }
        Assert.Equal(records, i);
    }
}
