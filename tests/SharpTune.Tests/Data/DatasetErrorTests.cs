using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>Malformed files, records and registry entries: each gives one precise message naming file, record and field.</summary>
public sealed class DatasetErrorTests : IDisposable
{
    private const string AlpacaInfo = """{"demo": {"file_name": "data.json"}}""";
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private PreparedData Load(string dataset = "demo", bool lenient = false) =>
        SupervisedDatasets.Load(
            new DataArguments { Dataset = [dataset], DatasetDir = dir.Path, CutoffLen = 256, SkipInvalidRecords = lenient },
            SftPreprocessFixture.Get("qwen.json").Tokenizer, ChatTemplates.Get("qwen"), seed: 1);

    private string LoadError(string dataset = "demo") => Assert.ThrowsAny<Exception>(() => Load(dataset)).Message;

    [Fact]
    public void BadJsonNamesTheFileLineAndByte()
    {
        const string thirdLine = """  {"instruction": "b", "output": "c",}""";
        dir.Info(AlpacaInfo).Write("data.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n" + thirdLine + "\n]");

        string message = LoadError();

        Assert.StartsWith($"data.json: invalid JSON at line 3, byte {thirdLine.IndexOf('}') + 1}: ", message);
    }

    [Fact]
    public void MissingOutputNamesTheRecordAndColumn()
    {
        dir.Info(AlpacaInfo).Write("data.json", """[{"instruction": "a", "output": "b"}, {"instruction": "c"}]""");
        Assert.Equal("data.json: record 1: 'output' is missing", LoadError());
    }

    [Fact]
    public void MappedColumnsAreNamedByTheirFileNames()
    {
        dir.Info("""{"demo": {"file_name": "data.json", "columns": {"prompt": "q", "response": "a"}}}""")
            .Write("data.json", """[{"q": "x", "a": "y"}, {"q": "x", "a": null}]""");
        Assert.Equal("data.json: record 1: 'a' is missing", LoadError());
    }

    [Theory]
    [InlineData("""{"instruction": 5, "output": "b"}""", "'instruction' must be a string, got a number")]
    [InlineData("""{"instruction": "a", "output": ["b"]}""", "'output' must be a string, got a list")]
    [InlineData("""{"instruction": "a", "output": ""}""", "'output' is empty")]
    [InlineData("\"just text\"", "a record must be a JSON object, got a string")]
    public void WrongTypesAndEmptyOutputAreReported(string record, string problem)
    {
        dir.Info(AlpacaInfo).Write("data.json", $$"""[{"instruction": "a", "output": "b"}, {{record}}]""");
        Assert.Equal("data.json: record 1: " + problem, LoadError());
    }

    [Fact]
    public void HistoryMustBePairsOfStrings()
    {
        dir.Info("""{"demo": {"file_name": "data.json", "columns": {"prompt": "instruction", "response": "output", "history": "history"}}}""")
            .Write("data.json", """[{"instruction": "a", "output": "b", "history": [["q", "r"], ["q"]]}]""");
        Assert.Equal("data.json: record 0: 'history'[1] must be a [prompt, response] pair of strings", LoadError());
    }

    [Fact]
    public void JsonLinesErrorsNameTheLine()
    {
        dir.Info("""{"demo": {"file_name": "data.jsonl"}}""")
            .Write("data.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"c\"}\n");
        Assert.Equal("data.jsonl: line 3: 'output' is missing", LoadError());

        const string badLine = """{"instruction": "c" "output": "d"}""";
        dir.Write("data.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n" + badLine + "\n");
        Assert.StartsWith($"data.jsonl: line 2: invalid JSON at byte {badLine.IndexOf("\"output") + 1}: ", LoadError());
    }

    [Theory]
    [InlineData("""[{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]""",
        "'conversations'[0] has role 'gpt' where a human or observation message belongs (after an optional first system message, messages alternate human|observation and gpt|function_call)")]
    [InlineData("""[{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}, {"from": "human", "value": "z"}]""",
        "'conversations' ends with a 'human' message; the last message must be the answer (gpt or function_call)")]
    [InlineData("""[{"from": "system", "value": "s"}]""", "'conversations' has only a system message")]
    [InlineData("""[{"from": "human", "value": "x"}, {"from": "gpt", "value": ""}]""", "'conversations'[1] (the response) is empty")]
    [InlineData("""[{"from": "human", "value": "x"}, {"from": "gpt"}]""", "'conversations'[1] has no 'value'")]
    [InlineData("""[{"from": "human", "value": "x"}, {"from": "function_call", "value": "{\"name\": \"f\"}"}]""",
        "'conversations'[1]: function call 'f' has no 'arguments'")]
    [InlineData("""[{"from": "human", "value": "x"}, {"from": "function_call", "value": "get_weather(city)"}]""",
        "'conversations'[1]: the function call is not valid JSON ('g' is an invalid start of a value.)")]
    [InlineData("\"hello\"", "'conversations' must be a list of messages, got a string")]
    public void InvalidSharegptConversationsAreReported(string conversations, string problem)
    {
        dir.Info("""{"chat": {"file_name": "chat.json", "formatting": "sharegpt"}}""")
            .Write("chat.json", $$"""[{"conversations": {{conversations}}}]""");
        Assert.Equal("chat.json: record 0: " + problem, LoadError("chat"));
    }

    [Fact]
    public void InvalidToolsAreReported()
    {
        dir.Info("""{"chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}}}""")
            .Write("chat.json", """[{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}], "tools": "{\"name\": \"f\"}"}]""");
        Assert.Equal("chat.json: record 0: 'tools' must hold a JSON list of tools, got an object", LoadError("chat"));
    }

    [Theory]
    [InlineData("""{"hub": {"om_hub_url": "HaM/alpaca_en"}}""", "hub",
        "dataset 'hub': it is read from om_hub_url 'HaM/alpaca_en', which SharpTune does not support here; download the data into the dataset folder and register it with file_name")]
    [InlineData("""{"hub": {"ms_hub_url": "sharegpt_gpt4"}}""", "hub",
        "dataset 'hub': ms_hub_url 'sharegpt_gpt4' is not a ModelScope dataset id (ORG/NAME)")]
    [InlineData("""{"hub": {"hf_hub_url": "not a repo"}}""", "hub",
        "dataset 'hub': hf_hub_url 'not a repo' is not a Hub dataset id (NAME or ORG/NAME)")]
    [InlineData("""{"hub": {"hf_hub_url": "org/data", "split": "train[:10%]"}}""", "hub",
        "dataset 'hub': split 'train[:10%]' is not a split name (letters, digits and '_', parts joined by '.'; no slicing)")]
    [InlineData("""{"hub": {"hf_hub_url": "org/data", "subset": "../other"}}""", "hub",
        "dataset 'hub': subset '../other' is not a folder of the repository")]
    [InlineData("""{"x": {"file_name": "x.json", "split": "test"}}""", "x",
        "dataset 'x': split 'test' does not exist in a local file (only 'train')")]
    [InlineData("""{"dpo": {"file_name": "dpo.json", "ranking": true}}""", "dpo",
        "dataset 'dpo': a preference dataset (ranking: true) must name its 'chosen' and 'rejected' columns in columns")]
    [InlineData("""{"dpo": {"file_name": "dpo.json", "ranking": true, "columns": {"chosen": "chosen", "rejected": "rejected"}}}""", "dpo",
        "dataset 'dpo': it is a preference dataset (ranking: true); supervised fine-tuning cannot use it (stages rm and dpo train on it)")]
    [InlineData("""{"x": {"file_name": "x.json", "formatting": "openai"}}""", "x",
        "dataset 'x': formatting 'openai' is not supported (alpaca or sharegpt)")]
    [InlineData("""{"x": {"file_name": "x.json", "columns": {"prompt": "instruction"}}}""", "x",
        "dataset 'x': columns does not name the 'response' column, so the records have no answers to train on (a plain-text corpus trains with stage: pt)")]
    public void UnusableRegistryEntriesAreExplained(string info, string name, string expectedEnd)
    {
        dir.Info(info);
        string message = LoadError(name);
        Assert.StartsWith(Path.Combine(dir.Path, "dataset_info.json") + ": ", message);
        Assert.EndsWith(expectedEnd, message);
    }

    [Fact]
    public void UndefinedDatasetsMissingFilesAndOtherFileTypesAreErrors()
    {
        dir.Info("""{"demo": {"file_name": "data.json"}, "table": {"file_name": "data.arrow"}, "gone": {"file_name": "gone.json"}}""")
            .Write("data.json", "[]").Write("data.arrow", "instruction,output\n");

        Assert.StartsWith("dataset 'nope' is not defined in ", LoadError("nope"));
        Assert.EndsWith("(it defines: demo, table, gone)", LoadError("nope"));
        Assert.StartsWith("dataset 'table': ", LoadError("table"));
        Assert.Contains("is not a .json, .jsonl, .txt, .csv or .parquet file", LoadError("table"));
        Assert.Equal($"dataset 'gone': '{Path.Combine(dir.Path, "gone.json")}' does not exist", LoadError("gone"));
        Assert.Equal("dataset 'demo' (data.json) holds no records", LoadError("demo"));
        Assert.Equal($"dataset_dir '{Path.Combine(dir.Path, "sub")}' has no dataset_info.json",
            Assert.Throws<FileNotFoundException>(() => SupervisedDatasets.Load(
                new DataArguments { Dataset = ["demo"], DatasetDir = Path.Combine(dir.Path, "sub") },
                SftPreprocessFixture.Get("qwen.json").Tokenizer, ChatTemplates.Get("qwen"), 1)).Message);
    }

    [Fact]
    public void StrictModeStopsAtTheFirstBadRecordLenientModeReportsThemAll()
    {
        var records = Enumerable.Range(0, 12).Select(i => i % 3 == 1
            ? $$"""{"instruction": "q{{i}}"}"""
            : $$"""{"instruction": "q{{i}}", "output": "a{{i}}"}""");
        dir.Info(AlpacaInfo).Write("data.json", "[" + string.Join(",\n", records) + "]");

        Assert.Equal("data.json: record 1: 'output' is missing", LoadError());

        var data = Load(lenient: true);
        Assert.Equal(8, data.Train.Count);
        Assert.Equal(4, data.Report.SkippedRecords);
        Assert.Equal(["data.json: record 1: 'output' is missing", "data.json: record 4: 'output' is missing",
            "data.json: record 7: 'output' is missing", "data.json: record 10: 'output' is missing"], data.Report.Problems);
        Assert.Equal(new DatasetSummary("demo", "train", 12, 8, 4), data.Report.Datasets.Single());
        Assert.Contains("skipped 4 malformed record(s)", data.Report.ToString());
        // The kept examples are the good records, in order: record 0's answer is "a0".
        var tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
        Assert.Equal("a0<|im_end|>\n", tokenizer.Decode(data.Train[0].Labels.Where(l => l != -100).ToArray()));
        Assert.Equal("a2<|im_end|>\n", tokenizer.Decode(data.Train[1].Labels.Where(l => l != -100).ToArray()));
    }

    [Fact]
    public void LenientModeWithOnlyBadRecordsStillFails()
    {
        dir.Info(AlpacaInfo).Write("data.json", """[{"instruction": "a"}]""");
        var e = Assert.Throws<InvalidDataException>(() => Load(lenient: true));
        Assert.Equal("dataset demo: no usable examples (all 1 records were malformed)", e.Message);
    }
}
