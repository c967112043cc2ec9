using SharpTune.Templates;

namespace SharpTune.Tests.Templates;

public class RegistryTests
{
    [Theory]
    [InlineData("qwen", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "<|im_end|>")]
    [InlineData("qwen1.5", "You are a helpful assistant", "<|im_end|>")]
    [InlineData("qwen2", "You are a helpful assistant.", "<|im_end|>")]
    [InlineData("qwen3", null, "<|im_end|>")]
    [InlineData("qwen3_nothink", null, "<|im_end|>")]
    [InlineData("chatml", null, "<|im_end|>")]
    [InlineData("llama3", null, "<|eot_id|>")]
    public void NamedTemplatesHaveTheirDefaultSystemAndStopWords(string name, string? defaultSystem, string firstStopWord)
    {
        var template = ChatTemplates.Get(name);

        Assert.Equal(name, template.Name);
        Assert.Equal(defaultSystem, template.DefaultSystem);
        Assert.Equal(firstStopWord, template.StopWords[0]);
        Assert.Equal(firstStopWord, template.EosToken);
        Assert.Contains(name, ChatTemplates.Names);
    }

    [Fact]
    public void NamesIncludeTheRequiredTemplates()
    {
        foreach (var name in new[] { "qwen", "qwen1.5", "chatml", "qwen3", "qwen3_nothink", "llama3", "alpaca", "empty" })
            Assert.Contains(name, ChatTemplates.Names);
        Assert.True(ChatTemplates.Get("qwen3").Thinking);
        Assert.False(ChatTemplates.Get("qwen3_nothink").Thinking);
        Assert.Equal(["<|im_end|>", "<|im_start|>"], ChatTemplates.Get("chatml").StopWords);
    }

    [Fact]
    public void UnknownNameListsTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplates.Get("qwen4"));

        Assert.Contains("qwen4", e.Message);
        foreach (var name in ChatTemplates.Names)
            Assert.Contains(name, e.Message);
    }

    [Theory]
    [InlineData("qwen1.5-chat", "qwen1.5")]
    [InlineData("qwen2.5-instruct", "qwen")]
    [InlineData("qwen3", "qwen3")]
    public void AutoDetectsTheTemplateFromTokenizerConfig(string folder, string expected) =>
        Assert.Equal(expected, ChatTemplates.FromModelDirectory(TestPaths.Fixtures("tokenizers", folder)).Name);

    [Fact]
    public void AutoPicksChatglm3ByChatGlm3sTokenizerClass() =>
        Assert.Equal("chatglm3", ChatTemplates.FromModelDirectory(TestPaths.Fixtures("tokenizers", "chatglm3-uni")).Name);

    [Theory]
    [InlineData("ChatGLMTokenizer", "chatglm3")]
    [InlineData("ChatGLM4Tokenizer", "glm4")]
    public void AutoPicksTheGlmTemplateByTheTokenizerClassWhenNoChatTemplateIsRecognised(string tokenizerClass, string expected)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"),
            $$"""{"tokenizer_class": "{{tokenizerClass}}", "chat_template": "{{"{% for message in messages %}[gMASK]<sop>{{ message['content'] }}{% endfor %}"}}"}""");

        Assert.Equal(expected, ChatTemplates.FromModelDirectory(dir.Path).Name);
    }

    [Fact]
    public void AutoWithoutTokenizerConfigNamesTheFile()
    {
        using var dir = new TempDir();

        var e = Assert.Throws<FileNotFoundException>(() => ChatTemplates.FromModelDirectory(dir.Path));

        Assert.Contains(Path.Combine(dir.Path, "tokenizer_config.json"), e.Message);
    }

    [Theory]
    [InlineData("""{"eos_token": "</s>"}""")]
    [InlineData("""{"chat_template": "{% for message in messages %}[INST] {{ message['content'] }} [/INST]{% endfor %}"}""")]
    [InlineData("""{"chat_template": "{{ '<|im_start|>system\nYou are a pirate<|im_end|>\n' }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"}""")]
    public void AutoWithUnrecognisedChatTemplateNamesTheFile(string config)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), config);

        var e = Assert.Throws<InvalidDataException>(() => ChatTemplates.FromModelDirectory(dir.Path));

        Assert.Contains(Path.Combine(dir.Path, "tokenizer_config.json"), e.Message);
    }

    [Fact]
    public void AutoRecognisesQwen2InstructByItsDefaultSystem()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"),
            """{"chat_template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"}""");

        Assert.Equal("qwen2", ChatTemplates.FromModelDirectory(dir.Path).Name);
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("sharptune-templates-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    [Fact]
    public void ForModelBindsTheFoldersEosTokenSoAlpacaRenders()
    {
        var template = ChatTemplates.ForModel("alpaca", TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"));
        string rendered = template.Render([new ChatMessage(ChatRole.User, "Hi"), new ChatMessage(ChatRole.Assistant, "Hello")], addGenerationPrompt: false);
        Assert.EndsWith("### Response:\nHello<|im_end|>\n\n", rendered);
    }

    [Fact]
    public void ForModelWithoutANameDetectsTheTemplate() =>
        Assert.Equal("qwen3", ChatTemplates.ForModel("auto", TestPaths.Fixtures("tokenizers", "qwen3")).Name);
}
