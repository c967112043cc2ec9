using System.Text.Json.Nodes;
using SharpTune.Swift;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Swift;

/// <summary>
/// ms-swift's RLHF records read as its preprocessors read them (swift/llm/dataset/preprocessor/core.py), swift rlhf's
/// arguments as LLaMA-Factory keys, and evalscope's general_mcq prompt and answer extraction (evalscope/utils/multi_choices.py).
/// </summary>
public sealed class SwiftRlhfEvalTests
{
    private static JsonArray Convert(TempDir dir, SwiftRlhfData kind, params string[] lines)
    {
        string file = dir.File("data.jsonl");
        File.WriteAllLines(file, lines);
        return SwiftPreferenceData.Convert(file, kind, "x.json").Records;
    }

    private static InvalidDataException Refused(SwiftRlhfData kind, params string[] lines)
    {
        using var dir = new TempDir();
        return Assert.Throws<InvalidDataException>(() => Convert(dir, kind, lines));
    }

    [Fact]
    public void MessagesWithRejectedResponseOrRejectedMessagesBecomeAlpacaPairs()
    {
        using var dir = new TempDir();
        var records = Convert(dir, SwiftRlhfData.Pairs,
            """{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "good"}], "rejected_response": "bad"}""",
            """{"messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "good"}], "rejected_messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "worse"}]}""");
        Assert.Equal("""{"instruction":"q2","chosen":"good","rejected":"bad","history":[["q1","a1"]],"system":"S"}""", records[0]!.ToJsonString());
        Assert.Equal("""{"instruction":"q","chosen":"good","rejected":"worse"}""", records[1]!.ToJsonString());
    }

    [Fact]
    public void ColumnsAreReadByTheirAliasesUnlessTwoAliasesOfOneColumnCancel()
    {
        using var dir = new TempDir();
        // question/answer are aliases of query/response; one alias per column is renamed.
        var records = Convert(dir, SwiftRlhfData.Tagged, """{"Question": "q", "answer": "a", "label": false, "system_prompt": "S"}""");
        Assert.Equal("""{"instruction":"q","output":"a","label":false,"system":"S"}""", records[0]!.ToJsonString());
        // instruction with input: AlpacaPreprocessor joins them by a newline.
        records = Convert(dir, SwiftRlhfData.Pairs, """{"instruction": "i", "input": "x", "output": "a", "rejected_response": "b"}""");
        Assert.Equal("""{"instruction":"i\nx","chosen":"a","rejected":"b"}""", records[0]!.ToJsonString());
        // A file whose records use answer and output has two aliases of response: neither is read.
        var e = Refused(SwiftRlhfData.Pairs, """{"query": "q", "answer": "a", "rejected_response": "b"}""", """{"query": "q", "output": "a", "rejected_response": "b"}""");
        Assert.Contains("line 1: 'response' is missing", e.Message);
        // PPO's prompts need no answer.
        records = Convert(dir, SwiftRlhfData.Prompts, """{"messages": [{"role": "user", "content": "q"}]}""");
        Assert.Equal("""{"instruction":"q"}""", records[0]!.ToJsonString());
    }

    [Fact]
    public void BadRecordsNameFileRecordAndField()
    {
        Assert.Contains("line 2: 'rejected_response' is missing",
            Refused(SwiftRlhfData.Pairs, """{"query": "q", "response": "a", "rejected_response": "b"}""", """{"query": "q", "response": "a"}""").Message);
        Assert.Contains("line 1: 'rejected_response' is the same as the chosen answer",
            Refused(SwiftRlhfData.Pairs, """{"query": "q", "response": "a", "rejected_response": "a"}""").Message);
        Assert.Contains("line 1: 'label' must be true or false, got string",
            Refused(SwiftRlhfData.Tagged, """{"query": "q", "response": "a", "label": "yes"}""").Message);
        Assert.Contains("line 1: 'messages'[1] has role 'tool'",
            Refused(SwiftRlhfData.Pairs, """{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "t"}], "rejected_response": "b"}""").Message);
        Assert.Contains("line 1: 'messages' must end with the assistant's answer",
            Refused(SwiftRlhfData.Pairs, """{"messages": [{"role": "user", "content": "q"}], "rejected_response": "b"}""").Message);
        Assert.Contains("data.jsonl", Refused(SwiftRlhfData.Pairs, """{"query": "q", "response": "a"}""").Message);
        Assert.Contains("line 1: 'rejected_messages'[0]: the user turns must be the chosen conversation's",
            Refused(SwiftRlhfData.Pairs, """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected_messages": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]}""").Message);
    }

    [Fact]
    public void RlhfTypesMapOntoLlamaFactoryStagesWithMsSwiftsDefaults()
    {
        (string, object)[] Pairs(params string[] argv) => [.. SwiftRlhf.For(SwiftArguments.Parse(SwiftCommand.Rlhf, argv), Environment.CurrentDirectory).Pairs];
        Assert.Equal([("pref_loss", "sigmoid"), ("pref_beta", 0.1), ("pref_ftx", 1.0)], Pairs());
        Assert.Equal([("pref_loss", "ipo"), ("pref_beta", 0.5), ("pref_ftx", 0.0)], Pairs("--loss_type", "ipo", "--beta", "0.5", "--rpo_alpha", "0"));
        Assert.Equal([("pref_loss", "simpo"), ("pref_beta", 2.0), ("simpo_gamma", 1.0), ("pref_ftx", 1.0)], Pairs("--rlhf_type", "simpo"));
        Assert.Equal([("pref_beta", 0.1), ("kto_chosen_weight", 1.0), ("kto_rejected_weight", 2.0)], Pairs("--rlhf_type", "kto", "--undesirable_weight", "2"));
        Assert.Empty(Pairs("--rlhf_type", "rm"));
        Assert.Equal("dpo", SwiftRlhf.For(SwiftArguments.Parse(SwiftCommand.Rlhf, ["--rlhf_type", "orpo"]), Environment.CurrentDirectory).Stage);

        void Refused(string message, params string[] argv) =>
            Assert.Contains(message, Assert.Throws<ArgumentException>(() => SwiftRlhf.For(SwiftArguments.Parse(SwiftCommand.Rlhf, argv), Environment.CurrentDirectory)).Message);
        Refused("--rlhf_type grpo is not supported", "--rlhf_type", "grpo");
        Refused("--label_smoothing applies to --loss_type sigmoid, not hinge", "--loss_type", "hinge", "--label_smoothing", "0.1");
        Refused("--beta does not apply to --rlhf_type rm", "--rlhf_type", "rm", "--beta", "0.2");
        Refused("--temperature must be above 0", "--rlhf_type", "ppo", "--reward_model", "m", "--temperature", "0");
    }

    [Theory]
    [InlineData("答案：B", "B")]
    [InlineData("答案: (C)", "C")]
    [InlineData("我认为答案：A，不是C", "A")]
    [InlineData("答案：[LETTER]。最后答案：D。", "D")]
    [InlineData("答案：E", null)]
    [InlineData("答案：AB", null)]
    [InlineData("It is probably B, not sure", "B")]
    [InlineData("Maybe Z", null)]
    [InlineData("no capital letters", null)]
    public void TheChosenLetterIsReadAsEvalscopesParseAnswersZhReadsIt(string reply, string? expected) =>
        Assert.Equal(expected, SwiftEval.ExtractChoice(reply, 4));

    [Fact]
    public void EvalRefusesWhatNeedsADownloadOrIsNotImplemented()
    {
        using var dir = new TempDir();
        void Refused(string message, params string[] argv) =>
            Assert.Contains(message, Assert.Throws<ArgumentException>(() => SwiftEval.Prepare(SwiftArguments.Parse(SwiftCommand.Eval, ["--model", dir.Path, .. argv]), dir.Path, DateTime.Now)).Message);
        Refused("--eval_dataset ceval: evalscope downloads this benchmark", "--eval_dataset", "ceval");
        Refused("--dataset_args general_qa.local_path is missing", "--eval_dataset", "general_qa");
        Refused("--dataset_args general_qa.few_shot_num is not supported", "--eval_dataset", "general_qa", "--dataset_args", """{"general_qa": {"local_path": ".", "few_shot_num": 1}}""");
        Refused("subset 'default' has no file", "--eval_dataset", "general_mcq", "--dataset_args", """{"general_mcq": {"local_path": "."}}""");
        Refused("--eval_backend OpenCompass is not supported", "--eval_backend", "OpenCompass", "--eval_dataset", "general_qa");
        Assert.Contains("--eval_url is not supported", Assert.Throws<ArgumentException>(() => SwiftArguments.Parse(SwiftCommand.Eval, ["--eval_url", "http://x"])).Message);
    }
}
