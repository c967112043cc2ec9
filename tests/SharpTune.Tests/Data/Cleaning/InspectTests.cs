using System.Diagnostics;
using System.Text.Json;
using System.Xml;
using System.Xml.Linq;
using SharpTune.Data;
using SharpTune.Data.Cleaning;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

[Collection(CliCollection.Name)]
public sealed class InspectTests : IDisposable
{
    private const int Ignore = -100;
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly SftPreprocessFixture Qwen = SftPreprocessFixture.Get("qwen.json");
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private static TokenCounting QwenTokens(int cutoffLen) =>
        new(Qwen.Tokenizer, ChatTemplates.ForModel("qwen", Qwen.TokenizerDir, Qwen.Tokenizer), cutoffLen);

    [Theory]
    [InlineData("alpaca_en_demo.json", "alpaca")]
    [InlineData("alpaca_zh_demo.json", "alpaca")]
    [InlineData("identity.json", "alpaca")]
    [InlineData("glaive_toolcall_en_demo.json", "sharegpt")]
    [InlineData("glaive_toolcall_zh_demo.json", "sharegpt")]
    public void DemoFiles_CountsEqualThoseReadFromTheJsonDirectly(string name, string format)
    {
        string path = TestPaths.Fixtures("llamafactory", name);
        using var json = JsonDocument.Parse(File.ReadAllBytes(path));
        var records = json.RootElement.EnumerateArray().ToList();
        // exact_duplicates.json: make_exact_duplicates.py, the dedup rule computed in Python (see tests/fixtures/dedup).
        using var reference = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("dedup", "exact_duplicates.json")));

        var inspection = DatasetInspector.InspectFile(path, null);

        Assert.Equal(records.Count, inspection.Records.Count);
        Assert.Equal(format, inspection.Format.Name);
        Assert.Equal("all records have " + (format == "alpaca" ? "instruction and output" : "conversations of from/value messages"), inspection.Format.Evidence);
        Assert.Equal(reference.RootElement.GetProperty(name).GetProperty("duplicates").GetArrayLength(), inspection.ExactDuplicates);
        Assert.Empty(inspection.Problems);
        if (format == "alpaca")
        {
            var input = inspection.Fields.Single(f => f.Field == "input");
            Assert.Equal(records.Count(r => !r.TryGetProperty("input", out _)), input.Missing);
            Assert.Equal(records.Count(r => r.TryGetProperty("input", out var v) && v.GetString() == ""), input.Empty);
            Assert.Equal(records.Select(r => r.GetProperty("output").GetString()!.Length), inspection.Records.Select(r => r.AnswerChars));
        }
        else
        {
            // Answers: every gpt message's text; a function_call message's JSON becomes a tool call, no text.
            Assert.Equal(records.Select(r => r.GetProperty("conversations").EnumerateArray()
                    .Where(m => m.GetProperty("from").GetString() == "gpt").Sum(m => m.GetProperty("value").GetString()!.Length)),
                inspection.Records.Select(r => r.AnswerChars));
        }
    }

    [Fact]
    public void Languages_TellTheChineseDemoFromTheEnglishOne()
    {
        Assert.Equal(new Dictionary<string, int> { [DatasetInspector.Latin] = 999 },
            new InspectionReport(DatasetInspector.InspectFile(Path.Combine(DemoDir, "alpaca_en_demo.json"), null)).Languages());
        var zh = new InspectionReport(DatasetInspector.InspectFile(Path.Combine(DemoDir, "alpaca_zh_demo.json"), null)).Languages();
        Assert.True(zh[DatasetInspector.Cjk] > 950, $"alpaca_zh_demo: {zh[DatasetInspector.Cjk]} of 1000 records CJK");
        Assert.Equal(DatasetInspector.NoLetters, DatasetInspector.Language("12 + 34 = 46"));
        Assert.Equal(DatasetInspector.OtherScript, DatasetInspector.Language("Привет, мир"));
    }

    [Fact]
    public void CraftedDefects_AreCounted_AndUnusableRecordsNameTheirLineAndField()
    {
        dir.Write("crafted.jsonl", string.Join("\n",
            """{"instruction": "Say hi", "input": "", "output": "Hi"}""",
            """{"instruction": "say   HI", "output": "hi"}""",
            """{"instruction": "Add", "input": "1 2", "output": ""}""",
            """{"input": "x", "output": "y"}""",
            """{"instruction": "Name a colour", "input": null, "output": "Red"}""") + "\n");

        var inspection = DatasetInspector.InspectFile(Path.Combine(dir.Path, "crafted.jsonl"), null);

        Assert.Equal("alpaca", inspection.Format.Name);
        Assert.Equal("4 of 5 records have instruction and output", inspection.Format.Evidence);
        Assert.Equal([new FieldCounts("instruction", 1, 0), new FieldCounts("input", 2, 1), new FieldCounts("output", 0, 1)], inspection.Fields);
        Assert.Equal(1, inspection.ExactDuplicates);
        Assert.Equal([$"{Path.Combine(dir.Path, "crafted.jsonl")}: line 3: 'output' is empty"], inspection.Problems);
        Assert.Equal(4, inspection.Records.Count(r => r.Problem is null));
    }

    [Fact]
    public void OpenAiMessages_AreDetected_AndBrokenTurnsReported()
    {
        dir.Write("chat.json", """
            [
              {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
              {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]},
              {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}]}
            ]
            """);

        var inspection = DatasetInspector.InspectFile(Path.Combine(dir.Path, "chat.json"), null);

        Assert.Equal("openai", inspection.Format.Name);
        Assert.Equal([new FieldCounts("messages", 0, 0), new FieldCounts("messages[].content", 0, 1)], inspection.Fields);
        Assert.Equal((9 + 2, 5), (inspection.Records[0].PromptChars, inspection.Records[0].AnswerChars));
        Assert.Equal(2, inspection.Problems.Count);
        Assert.Contains("record 1: 'messages'[1] (the response) is empty", inspection.Problems[0]);
        Assert.Contains("record 2: 'messages'[1] has role 'user' where a assistant or function_call message belongs", inspection.Problems[1]);
    }

    [Fact]
    public void UnknownFormatOrNoRecords_IsRefused_NamingTheFile()
    {
        dir.Write("odd.jsonl", "{\"question\": \"a\", \"answer\": \"b\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => DatasetInspector.InspectFile(Path.Combine(dir.Path, "odd.jsonl"), null));
        Assert.StartsWith($"{Path.Combine(dir.Path, "odd.jsonl")}: no record has the fields of a known format", e.Message);
        dir.Write("empty.json", "[]\n");
        Assert.Equal($"{Path.Combine(dir.Path, "empty.json")}: holds no records",
            Assert.Throws<InvalidDataException>(() => DatasetInspector.InspectFile(Path.Combine(dir.Path, "empty.json"), null)).Message);
    }

    [Theory]
    [InlineData("glaive_toolcall_en_demo", 512)]
    [InlineData("alpaca_zh_demo", 128)]
    public void TokenCounts_EqualWhatTrainingsLoaderMakesOfTheSameRecords(string dataset, int cutoffLen)
    {
        var inspection = DatasetInspector.InspectRegistered(DemoDir, dataset, QwenTokens(cutoffLen));
        PreparedData Load(int cutoff) => SupervisedDatasets.Load(new DataArguments { Dataset = [dataset], DatasetDir = DemoDir, CutoffLen = cutoff },
            Qwen.Tokenizer, ChatTemplates.ForModel("qwen", Qwen.TokenizerDir), seed: 42);
        var whole = Load(1 << 20).Train;
        var cut = Load(cutoffLen).Train;

        Assert.Equal(whole.Count, inspection.Records.Count);
        Assert.Equal(whole.Select(e => e.Labels.Count(l => l == Ignore)), inspection.Records.Select(r => r.PromptTokens!.Value));
        Assert.Equal(whole.Select(e => e.Labels.Count(l => l != Ignore)), inspection.Records.Select(r => r.TrainedTokens!.Value));
        Assert.Equal(whole.Zip(cut, (w, c) => w.Length - c.Length), inspection.Records.Select(r => r.TokensLost!.Value));
        Assert.Equal(whole.Zip(cut, (w, c) => w.Labels.Count(l => l != Ignore) - c.Labels.Count(l => l != Ignore)),
            inspection.Records.Select(r => r.TrainedTokensLost!.Value));
        Assert.Contains(inspection.Records, r => r.TokensLost > 0);
        Assert.Contains(inspection.Records, r => r.TokensLost == 0);
    }

    [Fact]
    public void Histogram_HasRoundBinsFromZero_ThatHoldEveryValue()
    {
        var bins = InspectionReport.Histogram([0, 5, 199, 200, 1234]);
        Assert.Equal(200, bins[0].To - bins[0].From);
        Assert.Equal(0, bins[0].From);
        Assert.Equal(7, bins.Count);
        Assert.Equal([3, 1, 0, 0, 0, 0, 1], bins.Select(b => b.Count));
        Assert.Equal([new HistogramBin(0, 1, 3)], InspectionReport.Histogram([0, 0, 0]));
    }

    [Fact]
    public void Html_IsWellFormed_SelfContained_AndHoldsTheCharts()
    {
        string html = Path.Combine(dir.Path, "report.html");
        var run = CliRunner.Run("data", "inspect", "glaive_toolcall_zh_demo", "--dataset-dir", DemoDir,
            "--tokenizer", Qwen.TokenizerDir, "--template", "qwen", "--cutoff-len", "512", "--html", html);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal([html], Directory.GetFiles(dir.Path));
        using var reader = XmlReader.Create(html, new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        var page = XDocument.Load(reader);
        XNamespace svg = "http://www.w3.org/2000/svg";
        var charts = page.Descendants(svg + "svg").ToList();
        Assert.Equal(["Characters per record", "Tokens per record (prompt + trained)", "Trained tokens per record", "Languages (by script)"],
            charts.Select(c => c.Attribute("aria-label")!.Value));
        var inspection = DatasetInspector.InspectRegistered(DemoDir, "glaive_toolcall_zh_demo", QwenTokens(512));
        var tokenBins = InspectionReport.Histogram(inspection.Records.Select(r => (long)r.Tokens!.Value).ToList());
        Assert.Equal(tokenBins.Select(b => $"{b.From}–{b.To}: {b.Count}"), charts[1].Descendants(svg + "title").Select(t => t.Value));
        Assert.Equal(300, charts[3].Descendants(svg + "title").Sum(t => int.Parse(t.Value.Split(": ")[1])));
        Assert.DoesNotContain(page.Descendants(), e => e.Name.LocalName is "script" or "link" or "img" or "iframe");
        Assert.DoesNotContain("http://", File.ReadAllText(html).Replace("http://www.w3.org/2000/svg", ""));
        Assert.DoesNotContain("https://", File.ReadAllText(html));
    }

    [ChromiumFact]
    public void Html_RendersInChromium()
    {
        string html = Path.Combine(dir.Path, "report.html"), png = Path.Combine(dir.Path, "shot.png");
        Assert.Equal(0, CliRunner.Run("data", "inspect", Path.Combine(DemoDir, "alpaca_zh_demo.json"), "--html", html).ExitCode);
        using var chromium = Process.Start(new ProcessStartInfo(ChromiumFactAttribute.Chromium!,
            ["--headless", "--no-sandbox", "--disable-gpu", $"--screenshot={png}", "--window-size=1000,1400", new Uri(html).AbsoluteUri])
            { RedirectStandardOutput = true, RedirectStandardError = true })!;
        chromium.StandardOutput.ReadToEnd();
        chromium.StandardError.ReadToEnd();
        Assert.True(chromium.WaitForExit(60_000), "chromium did not finish in 60 s");
        byte[] shot = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, shot[..4]);
        // A page that rendered has many colours; a blank or error page is nearly one.
        Assert.True(shot.Length > 20_000, $"the screenshot is only {shot.Length} bytes: the page did not render");
    }

    [Fact]
    public void Cli_PrintsTheSummary_AndJson_AndRefusesTokenOptionsWithoutATokenizer()
    {
        string path = Path.Combine(DemoDir, "identity.json");
        var text = CliRunner.Run("data", "inspect", path);
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("records: 91 (91 usable for training, 0 not)\nformat: alpaca (all records have instruction and output)\n", text.Stdout);
        Assert.Contains("histogram of characters per record:\n", text.Stdout);

        var json = CliRunner.Run("data", "inspect", path, "--tokenizer", Qwen.TokenizerDir, "--template", "qwen", "--json");
        Assert.Equal(0, json.ExitCode);
        var summary = JsonDocument.Parse(json.Stdout).RootElement;
        var inspection = DatasetInspector.InspectFile(path, QwenTokens(2048));
        Assert.Equal(inspection.Records.Sum(r => r.TrainedTokens!.Value), summary.GetProperty("trained_tokens").GetProperty("total").GetInt64());
        Assert.Equal(0, summary.GetProperty("records_cut").GetInt32());

        var refused = CliRunner.Run("data", "inspect", path, "--cutoff-len", "512");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("needs --tokenizer", refused.Stderr);
        Assert.Contains("dataset 'nope' is not defined in", CliRunner.Run("data", "inspect", "nope", "--dataset-dir", DemoDir).Stderr);
    }
}

/// <summary>A check that renders the HTML report in a real browser: it needs chromium on PATH and is skipped with the reason otherwise.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public static readonly string? Chromium = new[] { "chromium", "chromium-browser", "google-chrome" }
        .SelectMany(name => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, name)))
        .FirstOrDefault(File.Exists);

    public ChromiumFactAttribute()
    {
        if (Chromium is null) Skip = "the HTML report's browser check needs chromium (or chromium-browser, google-chrome) on PATH";
    }
}
