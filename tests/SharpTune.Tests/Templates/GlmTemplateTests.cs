using SharpTune.Data;
using SharpTune.Templates;
using SharpTune.Tests.IO;
using SharpTune.Tests.Tokenization;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Templates;

/// <summary>
/// LLaMA-Factory's chatglm3 and glm4 templates (data/template.py, formatter.py, tool_utils.py GLM4ToolUtils) and its
/// supervised processor's efficient_eos rule (processor/supervised.py). No LLaMA-Factory reference output exists for
/// these templates in the shared fixtures, so every expected id below is derived by hand from those rules: for
/// chatglm3 (slot element lists) each <c>{"token": ...}</c> element is its id and every text element is the fixture
/// tokenizer's encoding of that element alone; for glm4 the ids are written out from the small rank file's merges.
/// </summary>
public sealed class GlmTemplateTests : IDisposable
{
    private const int Ignore = SupervisedCollator.IgnoreIndex;
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// A ChatGLM3-style tokenizer folder: a SentencePiece model with ChatGLM3's nine special tokens after its vocabulary,
    /// eos &lt;/s&gt;. The model (no dummy prefix, extra whitespace kept) gives a newline encoded on its own other ids
    /// than a newline encoded with the text after it, so the element rule shows in the ids.
    /// </summary>
    internal static string ChatGlm3TokenizerFolder(string folder)
    {
        Directory.CreateDirectory(folder);
        File.Copy(TestPaths.Fixtures("sentencepiece", "uni_raw.model"), Path.Combine(folder, "tokenizer.model"));
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"tokenizer_class": "ChatGLMTokenizer", "eos_token": "</s>"}""");
        return folder;
    }

    /// <summary>A GLM-4-style tokenizer folder: the small tiktoken rank file of <see cref="GlmTokenizerTests"/>, eos &lt;|endoftext|&gt;.</summary>
    internal static string Glm4TokenizerFolder(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), GlmTokenizerTests.SmallRankFile());
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """{"eos_token": "<|endoftext|>"}""");
        return folder;
    }

    private static ChatMessage User(string text) => new(ChatRole.User, text);
    private static ChatMessage Assistant(string text) => new(ChatRole.Assistant, text);

    [Fact]
    public void Chatglm3MultiTurnPreprocessingLooksUpTokensEncodesEachElementAloneAndTrainsTheEosAsTheNextTurnsFirstLabel()
    {
        string dir = ChatGlm3TokenizerFolder(_dir.File("chatglm3"));
        var tokenizer = Tokenizer.FromDirectory(dir);
        var template = ChatTemplates.ForModel("chatglm3", dir, tokenizer);
        var processor = new SupervisedProcessor(tokenizer, template, cutoffLen: 1024, trainOnPrompt: false, maskHistory: false);

        var example = processor.Encode(new AlignedExample(
            [User("what is a fever"), Assistant("a high body temperature"), User("and a cough"), Assistant("a sudden expulsion of air")],
            "you are a doctor", null));

        int Id(string token) => tokenizer.TokenToId(token)!.Value;
        int[] Text(string text) => tokenizer.Encode(text);
        int eos = Id("</s>");
        int[] newline = Text("\n");
        int[] source1 = [Id("[gMASK]"), Id("sop"), Id("<|system|>"), .. newline, .. Text("you are a doctor"),
            Id("<|user|>"), .. newline, .. Text("what is a fever"), Id("<|assistant|>")];
        int[] target1 = [.. newline, .. Text("a high body temperature")];
        int[] source2 = [Id("<|user|>"), .. newline, .. Text("and a cough"), Id("<|assistant|>")];
        int[] target2 = [.. newline, .. Text("a sudden expulsion of air")];

        Assert.Equal([.. source1, .. target1, .. source2, .. target2, eos], example.InputIds);
        Assert.Equal(
            [.. Enumerable.Repeat(Ignore, source1.Length), .. target1,
             eos, .. Enumerable.Repeat(Ignore, source2.Length - 1), .. target2, eos],
            example.Labels);
        // The rule is not vacuous for this tokenizer: the newline encoded with its content gives other ids, and the
        // role token written as text is several pieces.
        Assert.NotEqual([.. newline, .. Text("what is a fever")], Text("\nwhat is a fever"));
        Assert.True(Text("<|user|>").Length > 1);
    }

    [Fact]
    public void Glm4MultiTurnPreprocessingEncodesSlotsAsTextAndAppendsOneEos()
    {
        string dir = Glm4TokenizerFolder(_dir.File("glm4"));
        var tokenizer = Tokenizer.FromDirectory(dir);
        var template = ChatTemplates.ForModel("glm4", dir, tokenizer);
        var processor = new SupervisedProcessor(tokenizer, template, cutoffLen: 1024, trainOnPrompt: false, maskHistory: false);

        var example = processor.Encode(new AlignedExample([User("hello"), Assistant("world"), User("he"), Assistant("or")], null, null));

        // Ids of the rank file: "hell" 258, " wor" 261, "he" 256, "or" 260, bytes as themselves; [gMASK] 264,
        // <sop> 266, <|user|> 269, <|assistant|> 270, <|endoftext|> 262. No system block without a system text.
        const int gmask = 264, sop = 266, user = 269, assistant = 270, eos = 262;
        int[] source1 = [gmask, sop, user, '\n', 258, 'o', assistant];
        int[] target1 = ['\n', 'w', 260, 'l', 'd'];
        int[] source2 = [user, '\n', 256, assistant];
        int[] target2 = ['\n', 260];
        Assert.Equal([.. source1, .. target1, .. source2, .. target2, eos], example.InputIds);
        Assert.Equal(
            [.. Enumerable.Repeat(Ignore, source1.Length), .. target1, eos, Ignore, Ignore, Ignore, .. target2, eos],
            example.Labels);
    }

    private const string WeatherTools =
        """[{"type": "function", "function": {"name": "get_weather", "description": "天气", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]""";

    [Theory]
    [InlineData("chatglm3")]
    [InlineData("glm4")]
    public void ToolsAreDescribedAndCalledInTheGlm4ToolFormat(string name)
    {
        var template = ChatTemplates.Get(name);
        List<ChatMessage> messages =
        [
            User("Weather in Beijing?"),
            new(ChatRole.Assistant, "", [new ToolCall("get_weather", """{"city":"Beijing"}""")]),
            new(ChatRole.Tool, """{"temp": 20}"""),
            Assistant("It is 20 degrees."),
        ];

        var turns = template.EncodeTurns(messages, "Be brief.", WeatherTools);

        // GLM4ToolUtils.tool_formatter: the system text, then the prompt, then per tool "## name", its function
        // object as json.dumps(indent=4, ensure_ascii=False) and the closing sentence.
        string toolJson = "{\n    \"name\": \"get_weather\",\n    \"description\": \"天气\",\n    \"parameters\": {\n        \"type\": \"object\",\n"
            + "        \"properties\": {\n            \"city\": {\n                \"type\": \"string\"\n            }\n        }\n    }\n}";
        string system = "Be brief.你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
            + "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具\n\n## get_weather\n\n" + toolJson
            + "\n在调用上述函数时，请使用 Json 格式表示调用的参数。";
        Assert.Equal(template.Prefix + "<|system|>\n" + system, turns.Head);
        Assert.Equal(
            [
                ("<|user|>\nWeather in Beijing?<|assistant|>", "get_weather\n{\"city\": \"Beijing\"}"),
                ("<|observation|>\n{\"temp\": 20}<|assistant|>", "\nIt is 20 degrees."),
            ],
            turns.Pairs);

        var parallel = new ChatMessage(ChatRole.Assistant, "", [new ToolCall("a", "{}"), new ToolCall("b", "{}")]);
        var e = Assert.Throws<ArgumentException>(() => template.EncodeTurns([User("x"), parallel], null, WeatherTools));
        Assert.Contains("parallel", e.Message);
    }

    [Fact]
    public void Chatglm3StopsAtTheEosUserAndObservationTokensAndIsRefusedOnATokenizerWithoutThem()
    {
        string dir = ChatGlm3TokenizerFolder(_dir.File("chatglm3"));
        var tokenizer = Tokenizer.FromDirectory(dir);
        var template = ChatTemplates.ForModel("chatglm3", dir, tokenizer);

        Assert.Equal([tokenizer.TokenToId("</s>")!.Value, tokenizer.TokenToId("<|user|>")!.Value, tokenizer.TokenToId("<|observation|>")!.Value],
            template.StopTokenIds(tokenizer));

        // The same SentencePiece model without ChatGLM3's special tokens cannot write the template.
        string plain = _dir.File("plain");
        Directory.CreateDirectory(plain);
        File.Copy(TestPaths.Fixtures("sentencepiece", "uni_raw.model"), Path.Combine(plain, "tokenizer.model"));
        File.WriteAllText(Path.Combine(plain, "tokenizer_config.json"), """{"eos_token": "</s>"}""");
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplates.ForModel("chatglm3", plain, Tokenizer.FromDirectory(plain)));
        Assert.Contains("chatglm3 template's stop word '<|user|>'", e.Message);
    }

    [Fact]
    public void ChatPromptsEndAtTheAssistantTokenAndRenderHistoryAsTrainingDoes()
    {
        string dir = ChatGlm3TokenizerFolder(_dir.File("chatglm3"));
        var tokenizer = Tokenizer.FromDirectory(dir);
        var template = ChatTemplates.ForModel("chatglm3", dir, tokenizer);
        List<ChatMessage> history = [User("hi"), Assistant("hello"), User("bye")];

        int[] prompt = template.EncodePrompt(tokenizer, history);

        // ChatGLM3's build_chat_input: prefix, then per message [<|role|>] + encode(metadata + "\n") + encode(content),
        // then <|assistant|>; the model writes the metadata line itself.
        int Id(string token) => tokenizer.TokenToId(token)!.Value;
        int[] newline = tokenizer.Encode("\n");
        Assert.Equal(
            [Id("[gMASK]"), Id("sop"), Id("<|user|>"), .. newline, .. tokenizer.Encode("hi"), Id("<|assistant|>"), .. newline, .. tokenizer.Encode("hello"),
             Id("<|user|>"), .. newline, .. tokenizer.Encode("bye"), Id("<|assistant|>")],
            prompt);
        Assert.Equal("[gMASK]sop<|user|>\nhi<|assistant|>\nhello<|user|>\nbye<|assistant|>", template.Render(history, addGenerationPrompt: true));
    }

    [Fact]
    public void Glm4RejectsTrainOnPromptBecauseItsAnswersCarryNoEos()
    {
        string dir = Glm4TokenizerFolder(_dir.File("glm4"));
        var tokenizer = Tokenizer.FromDirectory(dir);
        var e = Assert.Throws<ArgumentException>(() =>
            new SupervisedProcessor(tokenizer, ChatTemplates.ForModel("glm4", dir, tokenizer), 64, trainOnPrompt: true, maskHistory: false));
        Assert.Contains("train_on_prompt", e.Message);
    }
}
