using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet.Serialization;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tests.Cli;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data.Cleaning;

/// <summary>
/// `sharptune data convert`, run as users run it: LLaMA-Factory's demo files converted between alpaca, sharegpt and
/// OpenAI messages (JSON and JSON Lines) and registered in dataset_info.json train as exactly the examples their
/// originals give (training's own loader and the qwen template's encodings compared); crafted records for history,
/// system prompts, tools, CSV/Parquet input and malformed input.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ConvertTests : IDisposable
{
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly Tokenizer Tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
    private static readonly ChatTemplate Qwen = ChatTemplates.Get("qwen");
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private string In(string name) => Path.Combine(dir.Path, name);

    private static PreparedData Load(string datasetDir, string dataset) =>
        SupervisedDatasets.Load(new DataArguments { Dataset = [dataset], DatasetDir = datasetDir, CutoffLen = 4096 }, Tokenizer, Qwen, seed: 1);

    private static void AssertSameExamples(PreparedData expected, PreparedData actual)
    {
        Assert.Equal(expected.Train.Count, actual.Train.Count);
        for (int i = 0; i < expected.Train.Count; i++)
        {
            Assert.Equal(expected.Train[i].InputIds, actual.Train[i].InputIds);
            Assert.Equal(expected.Train[i].Labels, actual.Train[i].Labels);
        }
    }

    private CliResult Convert(params string[] args)
    {
        var result = CliRunner.Run(["data", "convert", .. args]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return result;
    }

    private string ConvertError(params string[] args)
    {
        var result = CliRunner.Run(["data", "convert", .. args]);
        Assert.Equal(1, result.ExitCode);
        return result.Stderr;
    }

    private JsonElement Entry(string name)
    {
        using var info = JsonDocument.Parse(File.ReadAllText(In("dataset_info.json")));
        return info.RootElement.GetProperty(name).Clone();
    }

    private List<JsonElement> Records(string name)
    {
        string text = File.ReadAllText(In(name));
        return name.EndsWith(".jsonl", StringComparison.Ordinal)
            ? text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList()
            : JsonDocument.Parse(text).RootElement.EnumerateArray().ToList();
    }

    [Theory]
    [InlineData("alpaca_en_demo")]
    [InlineData("alpaca_zh_demo")]
    [InlineData("identity")]
    public void Alpaca_ToSharegpt_ToOpenAi_ToAlpaca_TrainsAsTheOriginalAtEveryStep(string dataset)
    {
        string original = Path.Combine(DemoDir, dataset + ".json");
        Convert(original, "--out", In("sharegpt.jsonl"), "--to", "sharegpt", "--dataset-info", dir.Path);
        Convert(In("sharegpt.jsonl"), "--out", In("openai.json"), "--to", "openai", "--dataset-info", dir.Path);
        Convert(In("openai.json"), "--out", In("alpaca.jsonl"), "--to", "alpaca", "--dataset-info", dir.Path);

        var expected = Load(DemoDir, dataset);
        foreach (string name in new[] { "sharegpt", "openai", "alpaca" })
            AssertSameExamples(expected, Load(dir.Path, name));

        // The round trip gives back each record's texts: instruction and input joined as LLaMA-Factory's converter joins them.
        using var json = JsonDocument.Parse(File.ReadAllBytes(original));
        var back = Records("alpaca.jsonl");
        Assert.Equal(json.RootElement.GetArrayLength(), back.Count);
        foreach (var (before, after) in json.RootElement.EnumerateArray().Zip(back))
        {
            string input = before.TryGetProperty("input", out var i) ? i.GetString()! : "";
            string instruction = before.GetProperty("instruction").GetString()!;
            Assert.Equal(input.Length == 0 ? instruction : instruction + "\n" + input, after.GetProperty("instruction").GetString());
            Assert.Equal(before.GetProperty("output").GetString(), after.GetProperty("output").GetString());
        }
        // JSON into JSON Lines, alpaca kept: every record's instruction, input and output as they were.
        Convert(original, "--out", In("same.jsonl"), "--dataset-info", dir.Path);
        AssertSameExamples(expected, Load(dir.Path, "same"));
        foreach (var (before, after) in json.RootElement.EnumerateArray().Zip(Records("same.jsonl")))
            foreach (string column in new[] { "instruction", "input", "output" })
                Assert.Equal(before.TryGetProperty(column, out var b) ? b.GetString() : "", after.TryGetProperty(column, out var a) ? a.GetString() : "");
        Assert.Equal("sharegpt.jsonl", Entry("sharegpt").GetProperty("file_name").GetString());
        Assert.Equal("role", Entry("openai").GetProperty("tags").GetProperty("role_tag").GetString());
    }

    [Theory]
    [InlineData("glaive_toolcall_en_demo")]
    [InlineData("glaive_toolcall_zh_demo")]
    public void ToolCalls_SharegptToOpenAiAndBack_TrainAsTheOriginal(string dataset)
    {
        Convert(Path.Combine(DemoDir, dataset + ".json"), "--out", In("openai.jsonl"), "--to", "openai", "--dataset-info", dir.Path);
        Convert(In("openai.jsonl"), "--out", In("sharegpt.json"), "--to", "sharegpt", "--dataset-info", dir.Path);

        var expected = Load(DemoDir, dataset);
        AssertSameExamples(expected, Load(dir.Path, "openai"));
        AssertSameExamples(expected, Load(dir.Path, "sharegpt"));
        var roles = Records("openai.jsonl").SelectMany(r => r.GetProperty("messages").EnumerateArray()).Select(m => m.GetProperty("role").GetString()).ToHashSet();
        Assert.True(roles.SetEquals(["user", "assistant", "function_call", "tool"]), string.Join(", ", roles));
        Assert.Equal("tools", Entry("openai").GetProperty("columns").GetProperty("tools").GetString());
    }

    [Fact]
    public void ToolCallsIntoAlpaca_StopNamingFileRecordAndField_OrWithLenientAreLeftOutAndReported()
    {
        string glaive = Path.Combine(DemoDir, "glaive_toolcall_en_demo.json");
        string error = ConvertError(glaive, "--out", In("alpaca.json"), "--to", "alpaca");
        Assert.Contains($"{glaive}: record 0: 'conversations'[3] is a function call, which alpaca cannot hold", error);
        Assert.False(File.Exists(In("alpaca.json")));

        var result = Convert(glaive, "--out", In("alpaca.json"), "--to", "alpaca", "--lenient", "--report", In("report.jsonl"), "--dataset-info", dir.Path);

        using var json = JsonDocument.Parse(File.ReadAllBytes(glaive));
        var withTools = json.RootElement.EnumerateArray().Select((r, i) => (r, i))
            .Where(p => p.r.GetProperty("conversations").EnumerateArray().Any(m => m.GetProperty("from").GetString() is "function_call" or "observation"))
            .Select(p => p.i).ToList();
        var report = Records("report.jsonl");
        Assert.Equal(withTools, report.Select(r => r.GetProperty("record").GetInt32()));
        Assert.All(report, r => Assert.Equal("not_representable", r.GetProperty("reason").GetString()));
        Assert.Contains($"300 records read, {300 - withTools.Count} written, {withTools.Count} removed", result.Stdout);
        Assert.Contains($"not_representable {withTools.Count}", result.Stdout);

        // The kept records, conversations with history and tool schemas, train as their originals.
        var expected = Load(DemoDir, "glaive_toolcall_en_demo").Train.Where((_, i) => !withTools.Contains(i)).ToList();
        AssertSameExamples(new PreparedData(expected, [], new DataReport()), Load(dir.Path, "alpaca"));
        Assert.Equal(["prompt", "response", "history", "tools"], Entry("alpaca").GetProperty("columns").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void HistoryAndSystem_AlpacaToSharegptAndOpenAi_AsLlamaFactoryLaysThemOut()
    {
        dir.Write("chat.json", """
            [
              {"instruction": "And 3 + 4?", "input": "", "output": "7", "system": "You add numbers.",
               "history": [["1 + 1?", "2"], ["2 + 2?", "4"]]},
              {"instruction": "Translate", "input": "chat", "output": "猫"}
            ]
            """);

        Convert(In("chat.json"), "--out", In("chat_sharegpt.json"), "--to", "sharegpt");
        Convert(In("chat.json"), "--out", In("chat_openai.jsonl"), "--to", "openai");

        Assert.Equal("""{"conversations":[{"from":"human","value":"1 + 1?"},{"from":"gpt","value":"2"},{"from":"human","value":"2 + 2?"},{"from":"gpt","value":"4"},{"from":"human","value":"And 3 + 4?"},{"from":"gpt","value":"7"}],"system":"You add numbers."}""",
            Records("chat_sharegpt.json")[0].GetRawText());
        Assert.Equal("""{"conversations":[{"from":"human","value":"Translate\nchat"},{"from":"gpt","value":"猫"}]}""", Records("chat_sharegpt.json")[1].GetRawText());
        Assert.Equal("""{"messages":[{"role":"system","content":"You add numbers."},{"role":"user","content":"1 + 1?"},{"role":"assistant","content":"2"},{"role":"user","content":"2 + 2?"},{"role":"assistant","content":"4"},{"role":"user","content":"And 3 + 4?"},{"role":"assistant","content":"7"}]}""",
            Records("chat_openai.jsonl")[0].GetRawText());

        // And back: the history pairs and the system prompt (a first system message) return to their columns.
        Convert(In("chat_openai.jsonl"), "--out", In("back.json"), "--to", "alpaca");
        Assert.Equal("""{"instruction":"And 3 + 4?","output":"7","history":[["1 + 1?","2"],["2 + 2?","4"]],"system":"You add numbers."}""", Records("back.json")[0].GetRawText());
    }

    [Fact]
    public void DatasetInfo_EntryAddedOrReplaced_OtherEntriesKept_AndABrokenOneStopsBeforeAnythingIsWritten()
    {
        File.Copy(Path.Combine(DemoDir, "dataset_info.json"), In("dataset_info.json"));
        using var before = JsonDocument.Parse(File.ReadAllText(In("dataset_info.json")));
        Convert(Path.Combine(DemoDir, "identity.json"), "--out", In("identity.jsonl"), "--to", "sharegpt", "--dataset-info", In("dataset_info.json"), "--name", "identity");
        Convert(Path.Combine(DemoDir, "identity.json"), "--out", In("me.jsonl"), "--dataset-info", In("dataset_info.json"), "--name", "me");

        using var after = JsonDocument.Parse(File.ReadAllText(In("dataset_info.json")));
        Assert.Equal(before.RootElement.EnumerateObject().Select(p => p.Name).Append("me"), after.RootElement.EnumerateObject().Select(p => p.Name));
        foreach (var entry in before.RootElement.EnumerateObject().Where(p => p.Name != "identity"))
            Assert.Equal(entry.Value.GetRawText().ReplaceLineEndings().Replace(" ", ""), after.RootElement.GetProperty(entry.Name).GetRawText().ReplaceLineEndings().Replace(" ", ""));
        Assert.Equal("""{"file_name":"identity.jsonl","formatting":"sharegpt","columns":{"messages":"conversations"}}""",
            JsonSerializer.Serialize(after.RootElement.GetProperty("identity")));
        Assert.Equal("""{"file_name":"me.jsonl","columns":{"prompt":"instruction","response":"output"}}""", JsonSerializer.Serialize(after.RootElement.GetProperty("me")));
        AssertSameExamples(Load(DemoDir, "identity"), Load(dir.Path, "me"));

        dir.Write("broken/dataset_info.json", """{"a": {"file_name": "a.json"},""");
        string error = ConvertError(Path.Combine(DemoDir, "identity.json"), "--out", In("broken/x.json"), "--dataset-info", In("broken"));
        Assert.Contains($"{In("broken/dataset_info.json")}: invalid JSON", error);
        Assert.False(File.Exists(In("broken/x.json")));
        Assert.Equal("""{"a": {"file_name": "a.json"},""", File.ReadAllText(In("broken/dataset_info.json")));
    }

    [Fact]
    public void CsvWithOwnColumnNames_ConvertsByColumns_AndAMissingColumnIsNamed()
    {
        dir.Write("qa.csv", "question,context,answer\r\n\"What is 2+2?\",,4\r\n\"Capital of France?\",\"Europe, geography\",Paris\r\n");

        Convert(In("qa.csv"), "--out", In("qa.json"), "--columns", "prompt=question,query=context,response=answer", "--to", "alpaca", "--dataset-info", dir.Path);
        // Alpaca into alpaca keeps instruction and input apart; an empty cell is no input.
        Assert.Equal(["""{"instruction":"What is 2+2?","output":"4"}""", """{"instruction":"Capital of France?","input":"Europe, geography","output":"Paris"}"""],
            Records("qa.json").Select(r => r.GetRawText()));

        Assert.Equal("""{"file_name":"qa.json","columns":{"prompt":"instruction","query":"input","response":"output"}}""", JsonSerializer.Serialize(Entry("qa")));

        string error = ConvertError(In("qa.csv"), "--out", In("bad.json"), "--columns", "prompt=question,response=reply");
        Assert.Contains($"{In("qa.csv")}: row 2: cannot be read as alpaca: 'reply' is missing", error);
        Assert.False(File.Exists(In("bad.json")));
        Assert.Contains("--columns: 'promt' is not a dataset_info.json key here", ConvertError(In("qa.csv"), "--out", In("bad.json"), "--columns", "promt=question,response=answer"));
    }

    [Fact]
    public void SharegptWithItsOwnRoleNames_IsReadByTags()
    {
        dir.Write("chat.jsonl", """{"dialog": [{"speaker": "me", "text": "Hi"}, {"speaker": "bot", "text": "Hello"}]}""" + "\n");

        Convert(In("chat.jsonl"), "--out", In("chat.json"), "--to", "openai",
            "--columns", "messages=dialog", "--tags", "role_tag=speaker,content_tag=text,user_tag=me,assistant_tag=bot");

        Assert.Equal("""{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}""", Records("chat.json")[0].GetRawText());
        Assert.Contains("--tags: 'user' is not a dataset_info.json key here", ConvertError(In("chat.jsonl"), "--out", In("x.json"), "--tags", "user=me"));
    }

    [Fact]
    public void TheOtherDataCommands_RefuseCsv_PointingToConvert()
    {
        dir.Write("qa.csv", "instruction,output\r\na,b\r\n");
        var result = CliRunner.Run("data", "dedup", In("qa.csv"), "--out", In("qa_dedup.csv"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{In("qa.csv")}: this command writes its input's format, which must be JSON (.json) or JSON Lines (.jsonl); turn a CSV or Parquet file into one with `sharptune data convert`", result.Stderr);
    }

    public sealed class Turn
    {
        [JsonPropertyName("role")] public string? Role { get; set; }
        [JsonPropertyName("content")] public string? Content { get; set; }
    }

    public sealed class OpenAiRow
    {
        [JsonPropertyName("messages")] public List<Turn>? Messages { get; set; }
    }

    [Fact]
    public async Task OpenAiParquet_IsDetected_AndWrittenAsSharegpt()
    {
        await using (var stream = File.Create(In("chat.parquet")))
            await ParquetSerializer.SerializeAsync(new[]
            {
                new OpenAiRow { Messages = [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = "Hi" }, new() { Role = "assistant", Content = "Hello" }] },
            }, stream);

        var result = Convert(In("chat.parquet"), "--out", In("chat.jsonl"), "--to", "sharegpt");

        Assert.StartsWith("convert openai -> sharegpt: 1 records read, 1 written", result.Stdout);
        Assert.Equal("""{"conversations":[{"from":"human","value":"Hi"},{"from":"gpt","value":"Hello"}],"system":"Be brief."}""", Records("chat.jsonl")[0].GetRawText());
    }

    [Fact]
    public void MalformedInput_NamesFileAndRecordOrRow_AndNothingIsWritten_NorTheInputChanged()
    {
        dir.Write("bad.json", """[{"instruction": "a", "output": "b"}, {"instruction": "c", "output": }]""");
        Assert.Contains($"{In("bad.json")}: invalid JSON at line 1", ConvertError(In("bad.json"), "--out", In("out.jsonl")));
        Assert.Contains("(in record 1)", ConvertError(In("bad.json"), "--out", In("out.jsonl")));

        dir.Write("bad.csv", "instruction,output\r\na,b\r\nc,d,e\r\n");
        Assert.Contains($"{In("bad.csv")}: row 3: 3 fields, but the header names 2 columns", ConvertError(In("bad.csv"), "--out", In("out.jsonl")));

        File.WriteAllBytes(In("bad_utf8.csv"), [.. "instruction,output\r\na,b\r\nc,"u8, 0xC3, .. "d\r\n"u8]);
        Assert.Contains($"{In("bad_utf8.csv")}: row 3: not valid UTF-8 text (invalid UTF-8 byte 0xC3 at byte 28 of the file)",
            ConvertError(In("bad_utf8.csv"), "--out", In("out.jsonl")));

        dir.Write("bad.parquet", "PAR1 not really");
        Assert.Contains($"{In("bad.parquet")}: not a readable Parquet file", ConvertError(In("bad.parquet"), "--out", In("out.jsonl")));

        dir.Write("chat.jsonl", """{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}""" + "\n"
            + """{"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hello?"}]}""" + "\n");
        dir.Write("out.jsonl", "the previous output\n");
        Assert.Contains($"{In("chat.jsonl")}: line 2: cannot be read as sharegpt: 'conversations'[1] has role 'human' where a gpt or function_call message belongs",
            ConvertError(In("chat.jsonl"), "--out", In("out.jsonl"), "--to", "openai"));
        Assert.Equal("the previous output\n", File.ReadAllText(In("out.jsonl")));

        Assert.Contains("is the input file", ConvertError(In("chat.jsonl"), "--out", In("chat.jsonl"), "--lenient"));
        Assert.Contains("written as a JSON array (.json) or JSON Lines (.jsonl)", ConvertError(In("chat.jsonl"), "--out", In("chat.csv")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".*.tmp"));
    }

    [Fact]
    public void DryRun_WritesNothing_AndShowsTheReportAndEntry()
    {
        dir.Write("chat.jsonl", """{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}""" + "\n"
            + """{"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hello?"}]}""" + "\n");

        var result = Convert(In("chat.jsonl"), "--out", In("out.json"), "--to", "alpaca", "--lenient", "--dry-run", "--dataset-info", dir.Path);

        Assert.False(File.Exists(In("out.json")));
        Assert.False(File.Exists(In("dataset_info.json")));
        var line = JsonDocument.Parse(result.Stdout.Trim()).RootElement;
        Assert.Equal((1, "unreadable"), (line.GetProperty("record").GetInt32(), line.GetProperty("reason").GetString()));
        Assert.Contains("2 records read, 1 written, 1 removed, 0 changed (unreadable 1); dry run, nothing written", result.Stderr);
        Assert.Contains("""its entry would be "out": {"file_name":"out.json","columns":{"prompt":"instruction","response":"output"}}""", result.Stderr);
    }
}
