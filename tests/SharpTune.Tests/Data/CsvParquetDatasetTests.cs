using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet.Serialization;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data;

/// <summary>
/// CSV and Parquet data files: the demo datasets rewritten as CSV and Parquet train as exactly the examples their JSON
/// originals give, and malformed files name file, row or record, and column.
/// </summary>
public sealed class CsvParquetDatasetTests : IDisposable
{
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly Tokenizer Tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
    private static readonly ChatTemplate Qwen = ChatTemplates.Get("qwen");
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private static PreparedData Load(string datasetDir, string dataset, bool lenient = false) =>
        SupervisedDatasets.Load(new DataArguments { Dataset = [dataset], DatasetDir = datasetDir, CutoffLen = 1024, SkipInvalidRecords = lenient }, Tokenizer, Qwen, seed: 1);

    private string LoadError(string dataset = "demo") => Assert.ThrowsAny<InvalidDataException>(() => Load(dir.Path, dataset)).Message;

    private static void AssertSameExamples(PreparedData expected, PreparedData actual)
    {
        Assert.Equal(expected.Train.Count, actual.Train.Count);
        for (int i = 0; i < expected.Train.Count; i++)
        {
            Assert.Equal(expected.Train[i].InputIds, actual.Train[i].InputIds);
            Assert.Equal(expected.Train[i].Labels, actual.Train[i].Labels);
        }
    }

    private static List<JsonElement> DemoRecords(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, file))).RootElement.EnumerateArray().ToList();

    /// <summary>RFC 4180 with every field quoted; an empty text becomes an empty cell.</summary>
    private static string Csv(IEnumerable<string[]> rows) =>
        string.Concat(rows.Select(row => string.Join(",", row.Select(f => f.Length == 0 ? "" : "\"" + f.Replace("\"", "\"\"") + "\"")) + "\r\n"));

    public sealed class Turn
    {
        [JsonPropertyName("from")] public string? From { get; set; }
        [JsonPropertyName("value")] public string? Value { get; set; }
    }

    public sealed class ShareGptRow
    {
        [JsonPropertyName("conversations")] public List<Turn>? Conversations { get; set; }
        [JsonPropertyName("tools")] public string? Tools { get; set; }
    }

    public sealed class AlpacaRow
    {
        [JsonPropertyName("instruction")] public string? Instruction { get; set; }
        [JsonPropertyName("input")] public string? Input { get; set; }
        [JsonPropertyName("output")] public string? Output { get; set; }
    }

    private static void WriteParquet<T>(string path, IEnumerable<T> rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult();
    }

    internal static List<ShareGptRow> ToolCallRows(int count) => DemoRecords("glaive_toolcall_en_demo.json").Take(count).Select(r => new ShareGptRow
    {
        Conversations = r.GetProperty("conversations").EnumerateArray()
            .Select(t => new Turn { From = t.GetProperty("from").GetString(), Value = t.GetProperty("value").GetString() }).ToList(),
        Tools = r.GetProperty("tools").GetString(),
    }).ToList();

    [Fact]
    public void AlpacaCsvTrainsAsItsJsonOriginal()
    {
        var records = DemoRecords("alpaca_en_demo.json").Take(30).ToList();
        var header = new[] { "instruction", "input", "output" };
        dir.Info("""{"demo": {"file_name": "demo.csv"}}""")
            .Write("demo.csv", Csv([header, .. records.Select(r => header.Select(c => r.GetProperty(c).GetString()!).ToArray())]));
        Assert.Contains(records, r => r.GetProperty("output").GetString()!.Contains('\n'));

        var expected = Load(DemoDir, "alpaca_en_demo").Train.Take(30).ToList();
        AssertSameExamples(new PreparedData(expected, [], new DataReport()), Load(dir.Path, "demo"));
    }

    [Fact]
    public void SharegptParquetWithNestedConversationsTrainsAsItsJsonOriginal()
    {
        var rows = ToolCallRows(20);
        WriteParquet(Path.Combine(dir.Path, "chat", "part-0.parquet"), rows.Take(12));
        WriteParquet(Path.Combine(dir.Path, "chat", "part-1.parquet"), rows.Skip(12));
        dir.Info("""{"demo": {"file_name": "chat", "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}}}""");

        var all = Load(DemoDir, "glaive_toolcall_en_demo");
        AssertSameExamples(new PreparedData(all.Train.Take(20).ToList(), [], new DataReport()), Load(dir.Path, "demo"));
    }

    [Fact]
    public void ParquetRecordsAreCountedFromZeroAndAMissingColumnIsNamed()
    {
        WriteParquet(Path.Combine(dir.Path, "data.parquet"), [new AlpacaRow { Instruction = "a", Output = "b" }, new AlpacaRow { Instruction = "c" }]);
        dir.Info("""{"demo": {"file_name": "data.parquet"}}""");
        Assert.Equal("data.parquet: record 1: 'output' is missing", LoadError());
    }

    [Fact]
    public void CsvRowsAreNumberedAsASpreadsheetShowsThemAndAnEmptyCellIsMissing()
    {
        dir.Info("""{"demo": {"file_name": "data.csv"}}""").Write("data.csv", "instruction,input,output\na,,b\nc,d,\n");
        Assert.Equal("data.csv: row 3: 'output' is missing", LoadError());
    }

    [Fact]
    public void ACsvRowWithTheWrongNumberOfFieldsIsNamed()
    {
        dir.Info("""{"demo": {"file_name": "data.csv"}}""").Write("data.csv", "instruction,output\na,b\nc,d,e\n");
        Assert.Equal("data.csv: row 3: 3 fields, but the header names 2 columns (instruction, output)", LoadError());

        var lenient = Load(dir.Path, "demo", lenient: true);
        Assert.Single(lenient.Train);
        Assert.Equal([new DatasetSummary("demo", "train", 2, 1, 1)], lenient.Report.Datasets);
    }

    [Theory]
    [InlineData("instruction,output\n\"a,b\n", "data.csv: line 2: a quoted field is never closed")]
    [InlineData("instruction,output\na\"b,c\n", "data.csv: line 2: a quote inside an unquoted field (quote the whole field and double the quote)")]
    [InlineData("instruction,,output\na,b,c\n", "data.csv: row 1 (the header): column 2 has no name")]
    [InlineData("output,output\na,b\n", "data.csv: row 1 (the header): column 2 repeats the name 'output'")]
    public void MalformedCsvIsNamedByFileAndLine(string text, string message)
    {
        dir.Info("""{"demo": {"file_name": "data.csv"}}""").Write("data.csv", text);
        Assert.Equal(message, LoadError());
    }

    [Fact]
    public void ATruncatedParquetFileIsNamed()
    {
        string path = Path.Combine(dir.Path, "data.parquet");
        WriteParquet(path, [new AlpacaRow { Instruction = "a", Output = "b" }]);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        dir.Info("""{"demo": {"file_name": "data.parquet"}}""");
        Assert.StartsWith("data.parquet: not a readable Parquet file (", LoadError());
    }

    [Fact]
    public void ABinaryParquetColumnNamesTheRecordAndColumn()
    {
        WriteParquet(Path.Combine(dir.Path, "data.parquet"), [new BinaryRow { Instruction = "a", Output = Encoding.UTF8.GetBytes("b") }]);
        dir.Info("""{"demo": {"file_name": "data.parquet"}}""");
        Assert.Equal("data.parquet: record 0: column 'output' holds binary data, which has no text form (store text as a string column)", LoadError());
    }

    public sealed class BinaryRow
    {
        [JsonPropertyName("instruction")] public string? Instruction { get; set; }
        [JsonPropertyName("output")] public byte[]? Output { get; set; }
    }
}
