using System.Text.Json;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

/// <summary>
/// `data clean`'s language_id rule (data-juicer's language_id_score_filter, Lingua identifying): records written in
/// known languages, kept or removed by the allowed list and the confidence bound. The test program carries the models
/// of the five languages these tests choose among (SharpTune.Tests.csproj), not all 75.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class LanguageIdTests : IDisposable
{
    private static readonly string[] Shipped = ["de", "en", "es", "fr", "zh"];
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private string In(string name) => Path.Combine(dir.Path, name);

    /// <summary>One record per language, in the order en, zh, fr, de, es: a question and its answer, both in that language.</summary>
    private static readonly (string Language, string Instruction, string Output)[] Records =
    [
        ("en", "What should we do this afternoon?", "The weather is lovely today, so we are going for a long walk in the park."),
        ("zh", "我们今天下午做什么？", "今天天气很好，所以我们打算去公园散步很长时间。"),
        ("fr", "Que faisons-nous cet après-midi ?", "Le temps est magnifique aujourd'hui, alors nous allons faire une longue promenade dans le parc."),
        ("de", "Was machen wir heute Nachmittag?", "Das Wetter ist heute wunderschön, deshalb machen wir einen langen Spaziergang im Park."),
        ("es", "¿Qué hacemos esta tarde?", "Hoy hace un tiempo precioso, así que vamos a dar un largo paseo por el parque."),
    ];

    private void WriteRecords(params (string Instruction, string Output)[] extra) =>
        dir.Write("mixed.jsonl", string.Concat(Records.Select(r => (r.Instruction, r.Output)).Concat(extra)
            .Select(r => JsonSerializer.Serialize(new { instruction = r.Instruction, output = r.Output }) + "\n")));

    private List<JsonElement> Report(string name) => File.ReadAllLines(In(name)).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public void OnlyTheAllowedLanguagesAreKept_OthersReportedWithTheLanguageFound()
    {
        WriteRecords();
        dir.Write("recipe.yaml", "rules:\n  - language_id: {candidates: [en, zh, fr, de, es]}\n");

        var result = CliRunner.Run("data", "clean", In("mixed.jsonl"), "--out", In("kept.jsonl"), "--report", In("report.jsonl"), "--recipe", In("recipe.yaml"), "--lang", "en,zh");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(2, File.ReadAllLines(In("kept.jsonl")).Length);
        var removed = Report("report.jsonl");
        Assert.Equal([2, 3, 4], removed.Select(r => r.GetProperty("record").GetInt32()));
        Assert.Equal(["fr", "de", "es"], removed.Select(r => r.GetProperty("measured").GetString()!.Split(' ')[0]));
        Assert.All(removed, r => Assert.Equal("language not one of en, zh with confidence >= 0.8", r.GetProperty("rule").GetString()));
        Assert.Contains("language_id 3", result.Stdout);
    }

    [Fact]
    public void WithoutALanguageList_TheConfidenceBoundDecides_AndTextWithoutLettersIsUnknown()
    {
        var rule = LanguageIdRule.Create([], 0.8, Shipped);
        var (code, score) = rule.Identify(Records[0].Instruction + "\n" + Records[0].Output);
        Assert.Equal("en", code);
        Assert.Equal(("unknown", 0.0), rule.Identify("12345 + 67890 = 80235"));

        string text = Records[0].Instruction + "\n" + Records[0].Output;
        using var record = JsonDocument.Parse("{}");
        Assert.Null(LanguageIdRule.Create([], score, Shipped).Reject(record.RootElement, text));
        Assert.StartsWith("en ", LanguageIdRule.Create([], Math.Min(1, score + 1e-9), Shipped).Reject(record.RootElement, text));
        Assert.Equal("unknown 0", rule.Reject(record.RootElement, "12345 + 67890 = 80235"));
    }

    [Fact]
    public void UnknownCodes_MissingModelsAndBadBounds_AreRefusedNamingTheParameter()
    {
        Assert.Contains("lang 'xx' is not an ISO 639-1 code", Assert.Throws<ArgumentException>(() => LanguageIdRule.Create(["xx"], 0.8, Shipped)).Message);
        Assert.Contains("lang 'it' is not among the candidates", Assert.Throws<ArgumentException>(() => LanguageIdRule.Create(["it"], 0.8, Shipped)).Message);
        Assert.Contains("no Lingua language model for 'it'", Assert.Throws<ArgumentException>(() => LanguageIdRule.Create([], 0.8, ["en", "it"])).Message);
        Assert.Contains("min_score must lie in [0, 1]", Assert.Throws<ArgumentException>(() => LanguageIdRule.Create([], 1.5, Shipped)).Message);

        WriteRecords();
        var result = CliRunner.Run("data", "clean", In("mixed.jsonl"), "--out", In("kept.jsonl"), "--lang", "en", "--min-lang-score", "0.9");
        // The test program carries five languages' models, so the default candidates (all 75) cannot be loaded here.
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("rule 'language_id': no Lingua language model for", result.Stderr);
        Assert.False(File.Exists(In("kept.jsonl")));
    }

    /// <summary>
    /// `data clean` calls one detector from all cores. Lingua's LanguageDetector keeps no per-call state in fields
    /// (its source: only read-only fields, the models in static ConcurrentDictionaries of Lazy values); this checks it
    /// on the ~2000 English and Chinese demo records, their instructions and outputs alone and joined (~6000 texts
    /// of mixed lengths), identified in parallel against one at a time.
    /// </summary>
    [Fact]
    public void Identify_FromAllCoresAtOnce_GivesWhatItGivesOneAtATime()
    {
        var texts = new List<string>();
        foreach (string demo in (string[])["alpaca_en_demo.json", "alpaca_zh_demo.json"])
        {
            using var records = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("llamafactory", demo)));
            foreach (var record in records.RootElement.EnumerateArray())
            {
                string instruction = record.GetProperty("instruction").GetString()!, output = record.GetProperty("output").GetString()!;
                texts.AddRange([instruction, output, instruction + "\n" + output]);
            }
        }
        var rule = LanguageIdRule.Create([], 0.8, Shipped);
        var parallel = new (string, double)[texts.Count];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(4, Environment.ProcessorCount) }, i => parallel[i] = rule.Identify(texts[i]));
        var sequential = LanguageIdRule.Create([], 0.8, Shipped);
        for (int i = 0; i < texts.Count; i++) Assert.Equal(sequential.Identify(texts[i]), parallel[i]);
        Assert.Contains(parallel, r => r.Item1 == "en");
        Assert.Contains(parallel, r => r.Item1 == "zh");
    }

    [Fact]
    public void TheTestProgram_CarriesOnlyTheModelsItUses()
    {
        Assert.Equal(Shipped, Directory.GetDirectories(LanguageIdRule.ModelsDirectory).Select(Path.GetFileName).Order());
    }
}
