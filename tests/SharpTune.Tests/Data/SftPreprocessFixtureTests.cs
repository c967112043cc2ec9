using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>Every case of tests/fixtures/sft_preprocess: converter + supervised processor equal LLaMA-Factory token for token.</summary>
public sealed class SftPreprocessFixtureTests
{
    public static IEnumerable<object[]> AllCases() =>
        new[] { "qwen.json", "qwen3_nothink.json", "chatml.json" }.SelectMany(SftPreprocessFixture.CaseIds);

    [Theory]
    [MemberData(nameof(AllCases))]
    public void CaseMatchesLlamaFactory(string file, string id)
    {
        var fx = SftPreprocessFixture.Get(file);
        var c = fx.Cases.Single(x => x.GetProperty("id").GetString() == id);
        var settings = c.GetProperty("settings");
        var args = new DataArguments
        {
            CutoffLen = settings.GetProperty("cutoff_len").GetInt32(),
            TrainOnPrompt = settings.GetProperty("train_on_prompt").GetBoolean(),
            MaskHistory = settings.GetProperty("mask_history").GetBoolean(),
            DefaultSystem = settings.GetProperty("default_system").GetString(),
        };
        var template = ChatTemplates.ForModel(settings.GetProperty("template").GetString(), fx.TokenizerDir);
        var processor = SupervisedProcessor.ForData(fx.Tokenizer, template, args);
        var entry = DatasetEntry.Parse(c.GetProperty("dataset").GetString()!, c.GetProperty("dataset_info"), "case");

        var example = processor.Encode(DatasetConverter.Convert(entry, c.GetProperty("record")));

        Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("input_ids")), example.InputIds);
        Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("labels")), example.Labels);
        Assert.Equal(SftPreprocessFixture.Ints(c.GetProperty("attention_mask")), example.AttentionMask);
    }
}
