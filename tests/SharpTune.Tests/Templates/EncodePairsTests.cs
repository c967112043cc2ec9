using SharpTune.Templates;

namespace SharpTune.Tests.Templates;

/// <summary>Pair encoding (LLaMA-Factory encode_multiturn as text), expected values written from the slot definitions.</summary>
public class EncodePairsTests
{
    private const string QwenSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    private const string WeatherTool =
        """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""";

    private static ChatMessage User(string text) => new(ChatRole.User, text);
    private static ChatMessage Assistant(string text, string? reasoning = null) => new(ChatRole.Assistant, text, ReasoningContent: reasoning);

    [Fact]
    public void MultiTurnQwenGivesOnePairPerTurnWithTheSystemBlockInTheFirstPrompt()
    {
        var pairs = ChatTemplates.Get("qwen").EncodePairs(
            [new(ChatRole.System, "You are terse."), User("Hi"), Assistant("Hello!"), User("2+2?"), Assistant("4")]);

        Assert.Equal(
            [
                ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "Hello!<|im_end|>\n"),
                ("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", "4<|im_end|>\n"),
            ],
            pairs);
    }

    [Fact]
    public void EmptyOrMissingSystemTakesTheDefaultAndMatchesRender()
    {
        var template = ChatTemplates.Get("qwen");
        List<ChatMessage> messages = [User("Hi"), Assistant("Hello!"), User("Bye"), Assistant("Bye!")];

        var pairs = template.EncodePairs(messages, system: "");

        Assert.Equal($"<|im_start|>system\n{QwenSystem}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", pairs[0].Prompt);
        Assert.Equal(template.Render(messages, addGenerationPrompt: false), string.Concat(pairs.Select(p => p.Prompt + p.Answer)));
    }

    [Fact]
    public void ToolCallAndObservationTurnsUseTheQwenToolFormat()
    {
        var pairs = ChatTemplates.Get("qwen").EncodePairs(
            [
                User("Weather in Paris?"),
                new(ChatRole.Assistant, "", [new ToolCall("get_weather", """{"city":"Paris"}""")]),
                new(ChatRole.Tool, """{"temp": 21}""", Name: "get_weather"),
                Assistant("21 degrees."),
            ],
            toolsJson: WeatherTool);

        Assert.Equal(2, pairs.Count);
        Assert.Equal(
            $"<|im_start|>system\n{QwenSystem}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + """{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}"""
            + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n",
            pairs[0].Prompt);
        Assert.Equal("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n", pairs[0].Answer);
        Assert.Equal("<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n", pairs[1].Prompt);
        Assert.Equal("21 degrees.<|im_end|>\n", pairs[1].Answer);
    }

    [Fact]
    public void ChatmlUsesTheDefaultToolFormatAndToolRole()
    {
        var pairs = ChatTemplates.Get("chatml").EncodePairs(
            [
                User("Weather?"),
                new(ChatRole.Assistant, "", [new ToolCall("get_weather", """{"city":"Zürich"}""")]),
                new(ChatRole.Tool, "sunny"),
                Assistant("Sunny."),
            ],
            system: "Be brief.",
            toolsJson: WeatherTool);

        Assert.Equal(
            "<|im_start|>system\nBe brief.You have access to the following tools:\n"
            + "> Tool Name: get_weather\nTool Description: \nTool Args:\n  - city (string): \n\n"
            + "Use the following format if using a tool:\n```\nAction: tool name (one of [get_weather])\n"
            + "Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n"
            + "<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n",
            pairs[0].Prompt);
        Assert.Equal("Action: get_weather\nAction Input: {\"city\": \"Zürich\"}<|im_end|>\n", pairs[0].Answer);
        Assert.Equal(("<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n", "Sunny.<|im_end|>\n"), pairs[1]);
    }

    [Fact]
    public void EmptyToolListStillEmitsAnEmptySystemBlock()
    {
        var pairs = ChatTemplates.Get("qwen3_nothink").EncodePairs([User("Hi"), Assistant("Hello")], toolsJson: "[]");

        Assert.Equal("<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", pairs[0].Prompt);
    }

    [Fact]
    public void ToolsWithoutSystemStartWithABlankLineInQwen3NothinkButNotInQwen3()
    {
        List<ChatMessage> messages = [User("Hi"), Assistant("Hello")];

        Assert.StartsWith("<|im_start|>system\n\n\n# Tools\n", ChatTemplates.Get("qwen3_nothink").EncodePairs(messages, toolsJson: WeatherTool)[0].Prompt);
        Assert.StartsWith("<|im_start|>system\n# Tools\n", ChatTemplates.Get("qwen3").EncodePairs(messages, toolsJson: WeatherTool)[0].Prompt);
    }

    [Fact]
    public void Qwen3ThinkingTrainsThoughtsAndAddsEmptyOnes()
    {
        var pairs = ChatTemplates.Get("qwen3").EncodePairs([User("2+3?"), Assistant("5", reasoning: "add"), User("x4?"), Assistant("20")]);

        Assert.Equal(
            [
                ("<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n", "<think>\nadd\n</think>\n\n5<|im_end|>\n"),
                ("<|im_start|>user\nx4?<|im_end|>\n<|im_start|>assistant\n", "<think>\n\n</think>\n\n20<|im_end|>\n"),
            ],
            pairs);
    }

    [Fact]
    public void Qwen3WithoutThinkingDropsThoughtsAndPutsAnEmptyOneInThePrompt()
    {
        var pairs = ChatTemplates.Get("qwen3").EncodePairs(
            [User("2+3?"), Assistant("<think>\nadd\n</think>\n\n5"), User("x4?"), Assistant("20")], null, null, enableThinking: false);

        Assert.Equal(
            [
                ("<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", "5<|im_end|>\n"),
                ("<|im_start|>user\nx4?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", "20<|im_end|>\n"),
            ],
            pairs);
    }

    [Fact]
    public void Llama3PairsCarryTheBosPrefix()
    {
        var pairs = ChatTemplates.Get("llama3").EncodePairs([User("Hi"), Assistant("Hello")], system: "Sys");

        Assert.Equal(
            ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                "Hello<|eot_id|>"),
            pairs[0]);
    }

    [Fact]
    public void AlpacaNeedsTheTokenizersEosToken()
    {
        var alpaca = ChatTemplates.Get("alpaca");
        List<ChatMessage> messages = [User("Hi"), Assistant("Hello")];

        Assert.Throws<InvalidOperationException>(() => alpaca.EncodePairs(messages));
        Assert.Equal(
            [("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nHi\n\n### Response:\n", "Hello</s>\n\n")],
            alpaca.WithEosToken("</s>").EncodePairs(messages));
    }

    [Fact]
    public void EmptyTemplateIsPlainConcatenation()
    {
        Assert.Equal([("Hi", "Hello")], ChatTemplates.Get("empty").EncodePairs([User("Hi"), Assistant("Hello")]));
    }

    [Fact]
    public void NonAlternatingConversationsAreRejected()
    {
        var qwen = ChatTemplates.Get("qwen");

        Assert.Throws<ArgumentException>(() => qwen.EncodePairs([User("a"), User("b"), Assistant("c")]));
        Assert.Throws<ArgumentException>(() => qwen.EncodePairs([User("a"), Assistant("b"), User("c")]));
        Assert.Throws<ArgumentException>(() => qwen.EncodePairs([new(ChatRole.System, "s"), User("a"), Assistant("b")], system: "t"));
        Assert.Throws<ArgumentException>(() => ChatTemplates.Get("qwen1.5").EncodePairs([User("a"), Assistant("b")], toolsJson: WeatherTool));
    }

    [Fact]
    public void ToolCallsAndToolTextsFollowPythonJsonDumps()
    {
        var rendered = ChatTemplates.Get("qwen").Render(
            [
                User("n"),
                new(ChatRole.Assistant, "", [new ToolCall("calc", """{"a":1.50,"b":1e3,"c":-0.0,"d":22.0,"e":100,"f":1e16,"g":0.00001,"h":"q\"\\\n\u0001\u00e9","i":-0}""")]),
            ],
            addGenerationPrompt: false);

        Assert.EndsWith(
            """{"name": "calc", "arguments": {"a": 1.5, "b": 1000.0, "c": -0.0, "d": 22.0, "e": 100, "f": 1e+16, "g": 1e-05, "h": "q\"\\\n\u0001é", "i": 0}}"""
            + "\n</tool_call><|im_end|>\n",
            rendered);
    }
}
