using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data;

/// <summary>
/// LLaMA-Factory's preference demo data (dpo_en_demo, dpo_zh_demo, kto_en_demo and their dataset_info entries, in
/// tests/fixtures/llamafactory) loaded for stages rm/dpo, kto and ppo. The expected ids are built here from
/// LLaMA-Factory's published rules: its qwen template's slots (template.py, each slot tokenized on its own),
/// <c>encode_oneturn</c> (the prompt is every message before the last answer), its pairwise, feedback and unsupervised
/// processors and <c>infer_seqlen</c> (processor_utils.py), transcribed below as the reference.
/// </summary>
public sealed class PreferenceDataTests
{
    private const int Ignore = -100;
    private const string QwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly SftPreprocessFixture Qwen = SftPreprocessFixture.Get("qwen.json");
    private static Tokenizer Tokenizer => Qwen.Tokenizer;
    private static ChatTemplate QwenTemplate => ChatTemplates.ForModel("qwen", Qwen.TokenizerDir);

    /// <summary>LLaMA-Factory's <c>infer_seqlen</c>, transcribed from processor_utils.py.</summary>
    private static (int SourceLen, int TargetLen) LlamaFactoryInferSeqlen(int sourceLen, int targetLen, int cutoffLen)
    {
        int maxTargetLen = targetLen * 2 < cutoffLen ? cutoffLen
            : sourceLen * 2 < cutoffLen ? cutoffLen - sourceLen
            : (int)(cutoffLen * ((double)targetLen / (sourceLen + targetLen)));
        int newTargetLen = Math.Min(maxTargetLen, targetLen);
        int newSourceLen = Math.Min(Math.Max(cutoffLen - newTargetLen, 0), sourceLen);
        return (newSourceLen, newTargetLen);
    }

    /// <summary>
    /// <c>encode_oneturn</c> with LLaMA-Factory's qwen template: the system block (the default system when the record
    /// has none), then user and assistant slots in turn; the answer is the last assistant slot.
    /// </summary>
    private static (int[] Prompt, int[] Answer) QwenOneTurn(string? system, IReadOnlyList<string> turns, string answer)
    {
        var prompt = new List<int>(Tokenizer.Encode($"<|im_start|>system\n{(string.IsNullOrEmpty(system) ? QwenDefaultSystem : system)}<|im_end|>\n"));
        for (int i = 0; i < turns.Count; i++)
            prompt.AddRange(Tokenizer.Encode(i % 2 == 0 ? $"<|im_start|>user\n{turns[i]}<|im_end|>\n<|im_start|>assistant\n" : $"{turns[i]}<|im_end|>\n"));
        return ([.. prompt], Tokenizer.Encode($"{answer}<|im_end|>\n"));
    }

    /// <summary>Prompt ids with -100 labels followed by answer ids, as every one of LLaMA-Factory's processors builds an example.</summary>
    private static (int[] Ids, int[] Labels) PromptAndAnswer(int[] prompt, int[] answer, int promptLen, int answerLen) =>
        ([.. prompt[..promptLen], .. answer[..answerLen]], [.. Enumerable.Repeat(Ignore, promptLen), .. answer[..answerLen]]);

    private static void AssertExample((int[] Ids, int[] Labels) expected, SupervisedExample actual)
    {
        Assert.Equal(expected.Ids, actual.InputIds);
        Assert.Equal(expected.Labels, actual.Labels);
        Assert.All(actual.AttentionMask, m => Assert.Equal(1, m));
    }

    private static List<JsonElement> Records(string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, file))).RootElement.EnumerateArray().ToList();

    /// <summary>A sharegpt record's system (a leading system message) and its other messages' texts.</summary>
    private static (string? System, List<string> Turns) Conversation(JsonElement messages, string roleTag, string contentTag, string systemTag)
    {
        var list = messages.EnumerateArray().ToList();
        string? system = null;
        if (list.Count > 0 && list[0].GetProperty(roleTag).GetString() == systemTag)
        {
            system = list[0].GetProperty(contentTag).GetString();
            list.RemoveAt(0);
        }
        return (system, list.Select(m => m.GetProperty(contentTag).GetString()!).ToList());
    }

    private static DataArguments Args(string dataset, int cutoffLen, string? datasetDir = null, int? maxSamples = null) =>
        new() { Dataset = [dataset], DatasetDir = datasetDir ?? DemoDir, CutoffLen = cutoffLen, MaxSamples = maxSamples };

    [Theory]
    [InlineData("dpo_en_demo")]
    [InlineData("dpo_zh_demo")]
    public void PairwiseExamplesAreLlamaFactorysAtEveryCutoff(string dataset)
    {
        var records = Records(dataset + ".json");
        // What the cutoffs exercised: prompt cut, answers cut with the chosen longer, with the rejected longer, and a
        // shorter answer kept whole while the longer one is cut to the shared length.
        bool promptCut = false, chosenLongerCut = false, rejectedLongerCut = false, shorterKeptWhole = false;
        foreach (int cutoffLen in new[] { 64, 256, 700, 100_000 })
        {
            var data = PreferenceDatasets.LoadPairwise(Args(dataset, cutoffLen), Tokenizer, QwenTemplate, "dpo", seed: 1);
            Assert.Equal(records.Count, data.Train.Count);
            Assert.Empty(data.Eval);
            Assert.Equal(0, data.Report.SkippedRecords);
            for (int i = 0; i < records.Count; i++)
            {
                var (system, turns) = Conversation(records[i].GetProperty("conversations"), "from", "value", "system");
                var (prompt, chosen) = QwenOneTurn(system, turns, records[i].GetProperty("chosen").GetProperty("value").GetString()!);
                var (_, rejected) = QwenOneTurn(system, turns, records[i].GetProperty("rejected").GetProperty("value").GetString()!);
                var (promptLen, answerLen) = LlamaFactoryInferSeqlen(prompt.Length, Math.Max(chosen.Length, rejected.Length), cutoffLen);

                AssertExample(PromptAndAnswer(prompt, chosen, promptLen, Math.Min(answerLen, chosen.Length)), data.Train[i].Chosen);
                AssertExample(PromptAndAnswer(prompt, rejected, promptLen, Math.Min(answerLen, rejected.Length)), data.Train[i].Rejected);

                promptCut |= promptLen < prompt.Length;
                chosenLongerCut |= chosen.Length > rejected.Length && answerLen < chosen.Length;
                rejectedLongerCut |= rejected.Length > chosen.Length && answerLen < rejected.Length;
                shorterKeptWhole |= answerLen < Math.Max(chosen.Length, rejected.Length) && answerLen >= Math.Min(chosen.Length, rejected.Length);
            }
        }
        Assert.True(promptCut && chosenLongerCut && rejectedLongerCut && shorterKeptWhole,
            $"prompt cut {promptCut}, chosen longer cut {chosenLongerCut}, rejected longer cut {rejectedLongerCut}, shorter kept whole {shorterKeptWhole}");
    }

    [Fact]
    public void AlpacaPreferenceRecordsReadHistorySystemAndBothAnswers()
    {
        using var dir = new DataDir();
        dir.Info("""{"pairs": {"file_name": "pairs.json", "ranking": true, "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected", "history": "history", "system": "system"}}}""")
            .Write("pairs.json", """[{"instruction": "Say hi", "input": "politely", "chosen": "Hello, nice to meet you!", "rejected": "hi", "history": [["Who are you?", "A bot."]], "system": "Be kind."}]""");

        var pair = PreferenceDatasets.LoadPairwise(Args("pairs", 1024, dir.Path), Tokenizer, QwenTemplate, "rm", seed: 1).Train.Single();

        string[] turns = ["Who are you?", "A bot.", "Say hi\npolitely"];
        var (prompt, chosen) = QwenOneTurn("Be kind.", turns, "Hello, nice to meet you!");
        var (_, rejected) = QwenOneTurn("Be kind.", turns, "hi");
        AssertExample(PromptAndAnswer(prompt, chosen, prompt.Length, chosen.Length), pair.Chosen);
        AssertExample(PromptAndAnswer(prompt, rejected, prompt.Length, rejected.Length), pair.Rejected);
    }

    [Fact]
    public void AnEfficientEosTemplateEndsBothAnswersWithTheEosBeforeTheyAreCut()
    {
        // A template with efficient_eos (LLaMA-Factory's e.g. chatglm3, falcon): answers carry no end marker of their
        // own, the processor appends the tokenizer's eos to each answer before infer_seqlen.
        var template = new ChatTemplate
        {
            Name = "efficient",
            UserSlot = "User: {{content}}\n",
            GenerationPrompt = "Assistant:",
            AssistantSlot = "{{content}}",
            EfficientEos = true,
        }.WithEosToken("<|endoftext|>");
        int eos = Tokenizer.TokenToId("<|endoftext|>")!.Value;
        using var dir = new DataDir();
        dir.Info("""{"pairs": {"file_name": "pairs.json", "ranking": true, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}}}""")
            .Write("pairs.json", """[{"instruction": "Name three colours of the rainbow.", "chosen": " Red, orange and yellow are three of its seven colours.", "rejected": " Blue."}]""");
        int[] prompt = Tokenizer.Encode("User: Name three colours of the rainbow.\nAssistant:");
        int[] chosen = [.. Tokenizer.Encode(" Red, orange and yellow are three of its seven colours."), eos];
        int[] rejected = [.. Tokenizer.Encode(" Blue."), eos];

        foreach (int cutoffLen in new[] { 1024, 12 })
        {
            var pair = PreferenceDatasets.LoadPairwise(Args("pairs", cutoffLen, dir.Path), Tokenizer, template, "dpo", seed: 1).Train.Single();
            var (promptLen, answerLen) = LlamaFactoryInferSeqlen(prompt.Length, chosen.Length, cutoffLen);
            AssertExample(PromptAndAnswer(prompt, chosen, promptLen, Math.Min(answerLen, chosen.Length)), pair.Chosen);
            AssertExample(PromptAndAnswer(prompt, rejected, promptLen, Math.Min(answerLen, rejected.Length)), pair.Rejected);
        }
        Assert.Equal(eos, PreferenceDatasets.LoadPairwise(Args("pairs", 1024, dir.Path), Tokenizer, template, "dpo", seed: 1).Train.Single().Rejected.Labels[^1]);
    }

    [Fact]
    public void AThinkingTemplateEncodesThePairAsLlamaFactorysReasoningTemplateEncodesOneTurn()
    {
        // ReasoningTemplate.encode_oneturn (qwen3): earlier answers lose their thoughts and get no empty one; the last
        // answer without a thought gets the empty thought's ids (tokenized on their own) in front, trained with it.
        using var dir = new DataDir();
        dir.Info("""{"pairs": {"file_name": "pairs.json", "ranking": true, "formatting": "sharegpt", "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}}""")
            .Write("pairs.json", """
                [{"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "<think>\nplan it\n</think>\n\nA1"}, {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}, {"from": "human", "value": "Q3"}],
                  "chosen": {"from": "gpt", "value": "A good answer."}, "rejected": {"from": "gpt", "value": "<think>\nhmm\n</think>\n\nBad."}}]
                """);

        var pair = PreferenceDatasets.LoadPairwise(Args("pairs", 1024, dir.Path), Tokenizer, ChatTemplates.ForModel("qwen3", Qwen.TokenizerDir), "dpo", seed: 1).Train.Single();

        int[] User(string text) => Tokenizer.Encode($"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n");
        int[] Assistant(string text) => Tokenizer.Encode($"{text}<|im_end|>\n");
        int[] prompt = [.. User("Q1"), .. Assistant("A1"), .. User("Q2"), .. Assistant("A2"), .. User("Q3")];
        int[] chosen = [.. Tokenizer.Encode("<think>\n\n</think>\n\n"), .. Assistant("A good answer.")];
        int[] rejected = Assistant("<think>\nhmm\n</think>\n\nBad.");
        AssertExample(PromptAndAnswer(prompt, chosen, prompt.Length, chosen.Length), pair.Chosen);
        AssertExample(PromptAndAnswer(prompt, rejected, prompt.Length, rejected.Length), pair.Rejected);
    }

    [Theory]
    [InlineData(100_000, 1000)]
    [InlineData(200, 16)]
    [InlineData(64, 7)]
    public void KtoExamplesAndTheirKlExamplesAreLlamaFactorys(int cutoffLen, int batchSize)
    {
        var records = Records("kto_en_demo.json");
        var args = Args("kto_en_demo", cutoffLen);
        args.PreprocessingBatchSize = batchSize;
        var data = PreferenceDatasets.LoadFeedback(args, Tokenizer, QwenTemplate, seed: 1);

        Assert.Equal(records.Count, data.Train.Count);
        var encoded = records.Select(r =>
        {
            var (system, turns) = Conversation(r.GetProperty("messages"), "role", "content", "system");
            return QwenOneTurn(system, turns[..^1], turns[^1]);
        }).ToList();
        for (int i = 0; i < records.Count; i++)
        {
            // feedback.py: kl_response = [batch's last response] + responses[:-1], within each map batch.
            int start = i / batchSize * batchSize, end = Math.Min(start + batchSize, records.Count);
            int previous = i == start ? end - 1 : i - 1;
            var (prompt, answer) = encoded[i];
            var klAnswer = encoded[previous].Answer;
            var (promptLen, answerLen) = LlamaFactoryInferSeqlen(prompt.Length, answer.Length, cutoffLen);
            var (klPromptLen, klAnswerLen) = LlamaFactoryInferSeqlen(prompt.Length, klAnswer.Length, cutoffLen);

            AssertExample(PromptAndAnswer(prompt, answer, promptLen, answerLen), data.Train[i].Example);
            AssertExample(PromptAndAnswer(prompt, klAnswer, klPromptLen, klAnswerLen), data.Train[i].Kl);
            Assert.Equal(records[i].GetProperty("label").GetBoolean(), data.Train[i].Desirable);
        }
        Assert.Equal(150, data.Train.Count(e => e.Desirable));
    }

    [Fact]
    public void AlpacaKtoRecordsPairEachPromptWithTheAnswerBeforeIt()
    {
        // As LLaMA-Factory registers ultrafeedback_kto: alpaca columns and a kto_tag.
        using var dir = new DataDir();
        dir.Info("""{"kto": {"file_name": "kto.json", "columns": {"prompt": "prompt", "response": "completion", "kto_tag": "label"}}}""")
            .Write("kto.json", """[{"prompt": "Name a fruit.", "completion": "An apple.", "label": true}, {"prompt": "Name a colour.", "completion": "A fruit.", "label": false}]""");

        var data = PreferenceDatasets.LoadFeedback(Args("kto", 1024, dir.Path), Tokenizer, QwenTemplate, seed: 1).Train;

        var (fruit, apple) = QwenOneTurn(null, ["Name a fruit."], "An apple.");
        var (colour, wrong) = QwenOneTurn(null, ["Name a colour."], "A fruit.");
        AssertExample(PromptAndAnswer(fruit, apple, fruit.Length, apple.Length), data[0].Example);
        AssertExample(PromptAndAnswer(fruit, wrong, fruit.Length, wrong.Length), data[0].Kl);
        AssertExample(PromptAndAnswer(colour, wrong, colour.Length, wrong.Length), data[1].Example);
        AssertExample(PromptAndAnswer(colour, apple, colour.Length, apple.Length), data[1].Kl);
        Assert.Equal([true, false], data.Select(e => e.Desirable));
    }

    [Fact]
    public void PpoPromptsAreTheUnsupervisedProcessorsAndARecordWithoutAnswerGetsAnEmptyOne()
    {
        using var dir = new DataDir();
        dir.Info("""{"prompts": {"file_name": "prompts.json", "columns": {"prompt": "instruction"}}, "answered": {"file_name": "answered.json"}}""")
            .Write("prompts.json", """[{"instruction": "Write a haiku about autumn."}]""")
            .Write("answered.json", """[{"instruction": "Who are you?", "output": "I am TuneBot."}]""");
        var args = Args("prompts", 1024, dir.Path);
        args.Dataset = ["prompts", "answered"];

        var data = PreferenceDatasets.LoadPrompts(args, Tokenizer, QwenTemplate, seed: 1);

        var (prompt, empty) = QwenOneTurn(null, ["Write a haiku about autumn."], "");
        Assert.Equal(prompt, data.Train[0].PromptIds);
        Assert.Equal(empty, data.Train[0].LabelIds);
        var (answeredPrompt, answer) = QwenOneTurn(null, ["Who are you?"], "I am TuneBot.");
        Assert.Equal(answeredPrompt, data.Train[1].PromptIds);
        Assert.Equal(answer, data.Train[1].LabelIds);
    }

    [Fact]
    public void TheDemoEntriesRegisterTheirColumns()
    {
        var registry = DatasetRegistry.Load(DemoDir);
        var dpo = registry.Get("dpo_en_demo");
        Assert.True(dpo.Ranking);
        Assert.Equal(("conversations", "chosen", "rejected"), (dpo.Messages, dpo.Chosen, dpo.Rejected));
        var kto = registry.Get("kto_en_demo");
        Assert.False(kto.Ranking);
        Assert.Equal(("messages", "label"), (kto.Messages, kto.KtoTag));
    }
}
