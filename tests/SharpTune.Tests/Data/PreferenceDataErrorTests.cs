using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>
/// Preference and KTO data that cannot be used: a malformed record names file, record and field; a dataset of the
/// wrong kind for the stage (LLaMA-Factory's loader and processors decide which stage reads which) names the dataset,
/// what it is and what the stage needs.
/// </summary>
public sealed class PreferenceDataErrorTests : IDisposable
{
    private const string Info = """
        {
          "pairs": {"file_name": "pairs.json", "ranking": true, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
          "chat_pairs": {"file_name": "chat_pairs.json", "ranking": true, "formatting": "sharegpt", "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
          "kto": {"file_name": "kto.json", "formatting": "sharegpt", "columns": {"messages": "messages", "kto_tag": "label"},
                  "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
          "plain": {"file_name": "plain.json"}
        }
        """;

    private readonly DataDir dir = new();

    public PreferenceDataErrorTests() => dir.Info(Info)
        .Write("pairs.json", """[{"instruction": "a", "chosen": "b", "rejected": "c"}]""")
        .Write("chat_pairs.json", """[{"conversations": [{"from": "human", "value": "a"}], "chosen": {"from": "gpt", "value": "b"}, "rejected": {"from": "gpt", "value": "c"}}]""")
        .Write("kto.json", """[{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "label": true}]""")
        .Write("plain.json", """[{"instruction": "a", "output": "b"}]""");

    public void Dispose() => dir.Dispose();

    private DataArguments Args(string dataset, bool lenient = false) =>
        new() { Dataset = [dataset], DatasetDir = dir.Path, CutoffLen = 256, SkipInvalidRecords = lenient };

    private static SharpTune.Tokenization.Tokenizer Tokenizer => SftPreprocessFixture.Get("qwen.json").Tokenizer;

    private string Error(string stage, string dataset) => Assert.ThrowsAny<Exception>(() => Load(stage, dataset)).Message;

    private int Load(string stage, string dataset, bool lenient = false) => stage switch
    {
        "rm" or "dpo" => PreferenceDatasets.LoadPairwise(Args(dataset, lenient), Tokenizer, ChatTemplates.Get("qwen"), stage, seed: 1).Train.Count,
        "kto" => PreferenceDatasets.LoadFeedback(Args(dataset, lenient), Tokenizer, ChatTemplates.Get("qwen"), seed: 1).Train.Count,
        "ppo" => PreferenceDatasets.LoadPrompts(Args(dataset, lenient), Tokenizer, ChatTemplates.Get("qwen"), seed: 1).Train.Count,
        "sft" => SupervisedDatasets.Load(Args(dataset, lenient), Tokenizer, ChatTemplates.Get("qwen"), seed: 1).Train.Count,
        _ => PretrainDatasets.Load(Args(dataset, lenient), Tokenizer, ChatTemplates.Get("qwen"), SftPreprocessFixture.Get("qwen.json").TokenizerDir, seed: 1).Train.Count,
    };

    [Theory]
    [InlineData("pairs.json", """[{"instruction": "a", "chosen": "b", "rejected": "c"}, {"instruction": "d", "chosen": "e"}]""", "pairs",
        "pairs.json: record 1: 'rejected' is missing")]
    [InlineData("pairs.json", """[{"instruction": "a", "chosen": ["b"], "rejected": "c"}]""", "pairs",
        "pairs.json: record 0: 'chosen' must be a string, got a list")]
    [InlineData("pairs.json", """[{"instruction": "a", "chosen": "b", "rejected": ""}]""", "pairs",
        "pairs.json: record 0: 'rejected' is empty")]
    [InlineData("chat_pairs.json", """[{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}], "chosen": {"from": "gpt", "value": "c"}, "rejected": {"from": "gpt", "value": "d"}}]""", "chat_pairs",
        "chat_pairs.json: record 0: 'conversations' ends with a 'gpt' message; in a preference record it ends with the prompt (human or observation) and the answers are 'chosen' and 'rejected'")]
    [InlineData("chat_pairs.json", """[{"conversations": [{"from": "human", "value": "a"}], "chosen": {"from": "human", "value": "b"}, "rejected": {"from": "gpt", "value": "c"}}]""", "chat_pairs",
        "chat_pairs.json: record 0: 'chosen' has role 'human'; an answer has role gpt or function_call")]
    [InlineData("chat_pairs.json", """[{"conversations": [{"from": "human", "value": "a"}], "chosen": {"from": "gpt", "value": "b"}, "rejected": "c"}]""", "chat_pairs",
        "chat_pairs.json: record 0: 'rejected' must be an object, got a string")]
    [InlineData("chat_pairs.json", """[{"conversations": [{"from": "human", "value": "a"}], "chosen": {"from": "gpt", "value": "b"}}]""", "chat_pairs",
        "chat_pairs.json: record 0: 'rejected' is missing")]
    public void AMalformedPreferenceRecordNamesFileRecordAndField(string file, string json, string dataset, string message)
    {
        dir.Write(file, json);
        Assert.Equal(message, Error("dpo", dataset));
    }

    [Theory]
    [InlineData("""[{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]""",
        "kto.json: record 0: 'label' is missing (the KTO tag: true when the answer is desirable, false when it is not)")]
    [InlineData("""[{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "label": "yes"}]""",
        "kto.json: record 0: 'label' (the KTO tag) must be true or false, got a string")]
    [InlineData("""[{"messages": [{"role": "user", "content": "a"}], "label": true}]""",
        "kto.json: record 0: 'messages' ends with a 'user' message; the last message must be the answer (assistant)")]
    public void AMalformedKtoRecordNamesFileRecordAndField(string json, string message)
    {
        dir.Write("kto.json", json);
        Assert.Equal(message, Error("kto", "kto"));
    }

    [Fact]
    public void SkipInvalidRecordsSkipsAndCountsBadPairs()
    {
        dir.Write("pairs.json", """[{"instruction": "a", "chosen": "b", "rejected": "c"}, {"instruction": "d", "chosen": "e"}, {"instruction": "f", "chosen": "g", "rejected": "h"}]""");
        var data = PreferenceDatasets.LoadPairwise(Args("pairs", lenient: true), Tokenizer, ChatTemplates.Get("qwen"), "dpo", seed: 1);
        Assert.Equal(2, data.Train.Count);
        Assert.Equal(1, data.Report.SkippedRecords);
    }

    [Theory]
    [InlineData("dpo", "plain", "it is a dataset of single answers (neither ranking: true nor a kto_tag column); stage dpo trains on preference pairs and needs a dataset registered with ranking: true and its chosen and rejected columns")]
    [InlineData("rm", "kto", "it is a KTO dataset (kto_tag column 'label'); stage rm trains on preference pairs and needs a dataset registered with ranking: true and its chosen and rejected columns")]
    [InlineData("kto", "pairs", "it is a preference dataset (ranking: true); stage kto cannot use it (stages rm and dpo train on it)")]
    [InlineData("kto", "plain", "it is a dataset of single answers (neither ranking: true nor a kto_tag column); stage kto needs each record's desirability tag, so the entry's columns must name the kto_tag column")]
    [InlineData("ppo", "chat_pairs", "it is a preference dataset (ranking: true); stage ppo cannot use it (stages rm and dpo train on it)")]
    [InlineData("sft", "pairs", "it is a preference dataset (ranking: true); supervised fine-tuning cannot use it (stages rm and dpo train on it)")]
    [InlineData("sft", "kto", "it is a KTO dataset (kto_tag column 'label'); supervised fine-tuning cannot use it (stage kto trains on it)")]
    [InlineData("pt", "pairs", "it is a preference dataset (ranking: true); stage pt cannot use it (stages rm and dpo train on it)")]
    public void AStageRefusesADatasetOfAnotherKindNamingIt(string stage, string dataset, string problem)
    {
        string message = Error(stage, dataset);
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset '{dataset}': {problem}", message);
    }

    [Theory]
    [InlineData("dpo", "pairs")]
    [InlineData("rm", "chat_pairs")]
    [InlineData("kto", "kto")]
    [InlineData("ppo", "plain")]
    [InlineData("ppo", "kto")]
    [InlineData("sft", "plain")]
    [InlineData("pt", "kto")]
    public void AStageReadsTheDatasetsLlamaFactoryLetsItRead(string stage, string dataset) => Assert.Equal(1, Load(stage, dataset));

    [Theory]
    [InlineData("""{"x": {"file_name": "x.json", "ranking": true}}""",
        "dataset 'x': a preference dataset (ranking: true) must name its 'chosen' and 'rejected' columns in columns")]
    [InlineData("""{"x": {"file_name": "x.json", "ranking": "yes"}}""", "dataset 'x': ranking must be true or false, got a string")]
    [InlineData("""{"x": {"file_name": "x.json", "ranking": true, "columns": {"chosen": "c", "rejected": "r", "kto_tag": "t"}}}""",
        "dataset 'x': a preference dataset (ranking: true) has no kto_tag column; KTO data is a dataset of single answers with a kto_tag column")]
    public void UnusablePreferenceEntriesAreExplained(string info, string expectedEnd)
    {
        dir.Info(info);
        string message = Error("dpo", "x");
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: {expectedEnd}", message);
    }

    [Theory]
    [InlineData("train_on_prompt", "train_on_prompt: applies to stage sft only, not stage dpo")]
    [InlineData("mask_history", "mask_history: applies to stage sft only, not stage dpo")]
    [InlineData("packing", "packing: applies to stages sft and pt only, not stage dpo")]
    public void SftOnlySettingsAreRefusedForArgumentsBuiltInCode(string key, string message)
    {
        var args = Args("pairs");
        if (key == "train_on_prompt") args.TrainOnPrompt = true;
        else if (key == "mask_history") args.MaskHistory = true;
        else args.Packing = true;
        var e = Assert.Throws<ArgumentException>(() => PreferenceDatasets.LoadPairwise(args, Tokenizer, ChatTemplates.Get("qwen"), "dpo", seed: 1));
        Assert.Equal(message, e.Message);
    }
}
