using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>LLaMA-Factory's own demo data, loaded through its dataset_info.json like a training run does.</summary>
public sealed class DemoDatasetTests
{
    private const int Ignore = -100;
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly SftPreprocessFixture Qwen = SftPreprocessFixture.Get("qwen.json");

    private static PreparedData LoadDemo(string dataset, int? maxSamples = null, bool maskHistory = false) =>
        SupervisedDatasets.Load(
            new DataArguments { Dataset = [dataset], DatasetDir = DemoDir, CutoffLen = 1024, MaxSamples = maxSamples, MaskHistory = maskHistory },
            Qwen.Tokenizer, ChatTemplates.ForModel("qwen", Qwen.TokenizerDir), seed: 42);

    /// <summary>The fixture cases of one demo file at cutoff 1024 without train_on_prompt or a default_system override.</summary>
    private static IEnumerable<System.Text.Json.JsonElement> PlainCases(string dataset, bool maskHistory) =>
        Qwen.Cases.Where(c => c.GetProperty("dataset").GetString() == dataset
            && c.GetProperty("settings").GetProperty("cutoff_len").GetInt32() == 1024
            && !c.GetProperty("settings").GetProperty("train_on_prompt").GetBoolean()
            && c.GetProperty("settings").GetProperty("mask_history").GetBoolean() == maskHistory
            && c.GetProperty("settings").GetProperty("default_system").ValueKind == System.Text.Json.JsonValueKind.Null);

    [Theory]
    [InlineData("alpaca_zh_demo", 1000)]
    [InlineData("alpaca_en_demo", 999)]
    [InlineData("glaive_toolcall_zh_demo", 300)]
    public void EveryRecordLoadsAndTheFixtureRecordsEqualLlamaFactory(string dataset, int records)
    {
        var data = LoadDemo(dataset);

        Assert.Equal(records, data.Train.Count);
        Assert.Empty(data.Eval);
        Assert.Equal(0, data.Report.SkippedRecords);
        var cases = PlainCases(dataset, maskHistory: false).ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            var example = data.Train[c.GetProperty("record_index").GetInt32()];
            Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("input_ids")), example.InputIds);
            Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("labels")), example.Labels);
        }
        foreach (var example in data.Train)
        {
            Assert.InRange(example.Length, 1, 1024);
            Assert.All(example.AttentionMask, m => Assert.Equal(1, m));
        }
    }

    [Fact]
    public void MaskHistoryTrainsOnlyTheLastAnswerOfAToolConversation()
    {
        var c = PlainCases("glaive_toolcall_zh_demo", maskHistory: true).Single();
        var example = LoadDemo("glaive_toolcall_zh_demo", maxSamples: 30, maskHistory: true).Train[c.GetProperty("record_index").GetInt32()];

        Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("input_ids")), example.InputIds);
        Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("labels")), example.Labels);
    }

    [Fact]
    public void IdentityKeepsItsPlaceholdersAndTrainsExactlyOnEachOutput()
    {
        var data = LoadDemo("identity");
        var records = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, "identity.json"))).RootElement;

        Assert.Equal(91, data.Train.Count);
        for (int i = 0; i < data.Train.Count; i++)
        {
            var example = data.Train[i];
            int firstTrained = Array.FindIndex(example.Labels, l => l != Ignore);
            // The prompt is masked, the answer (output + "<|im_end|>\n") is trained in full.
            Assert.All(example.Labels[..firstTrained], l => Assert.Equal(Ignore, l));
            Assert.Equal(example.InputIds[firstTrained..], example.Labels[firstTrained..]);
            Assert.Equal(records[i].GetProperty("output").GetString() + "<|im_end|>\n", Qwen.Tokenizer.Decode(example.Labels[firstTrained..]));
            Assert.EndsWith("<|im_start|>assistant\n", Qwen.Tokenizer.Decode(example.InputIds[..firstTrained]));
        }
        Assert.Contains("{{name}}", Qwen.Tokenizer.Decode(data.Train[0].InputIds));
    }
}
