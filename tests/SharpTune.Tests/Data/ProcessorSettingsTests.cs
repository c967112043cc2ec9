using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>default_system and tool_format, which the fixtures leave at their defaults; expected texts written from LLaMA-Factory's rules.</summary>
public sealed class ProcessorSettingsTests
{
    private const string QwenSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    private static readonly SftPreprocessFixture Fx = SftPreprocessFixture.Get("qwen.json");

    private static SupervisedExample Encode(DataArguments args, string info, string record)
    {
        var processor = SupervisedProcessor.ForData(Fx.Tokenizer, ChatTemplates.ForModel("qwen", Fx.TokenizerDir), args);
        using var infoDoc = JsonDocument.Parse(info);
        using var recordDoc = JsonDocument.Parse(record);
        return processor.Encode(DatasetConverter.Convert(DatasetEntry.Parse("t", infoDoc.RootElement, "test"), recordDoc.RootElement));
    }

    [Fact]
    public void AnEmptyDefaultSystemRemovesTheTemplatesDefault()
    {
        var example = Encode(new DataArguments { DefaultSystem = "" }, """{"file_name": "x.json"}""", """{"instruction": "Hi", "output": "Yo"}""");

        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n", Fx.Tokenizer.Decode(example.InputIds));
    }

    [Fact]
    public void DefaultToolFormatDescribesToolsAndEndsCallsWithTheEosToken()
    {
        const string info = """{"file_name": "x.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}}""";
        const string record = """
            {"conversations": [{"from": "human", "value": "Q"}, {"from": "function_call", "value": "{\"name\": \"f\", \"arguments\": {\"x\": \"1\"}}"},
                               {"from": "observation", "value": "R"}, {"from": "gpt", "value": "A"}],
             "tools": "[{\"name\": \"f\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"string\", \"description\": \"X\"}}, \"required\": [\"x\"]}}]"}
            """;

        var example = Encode(new DataArguments { ToolFormat = "default" }, info, record);

        string system = QwenSystem + "You have access to the following tools:\n"
            + "> Tool Name: f\nTool Description: d\nTool Args:\n  - x (string, required): X\n\n"
            + "Use the following format if using a tool:\n```\nAction: tool name (one of [f])\n"
            + "Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. ```{\"input\": \"hello world\", \"num_beams\": 5}```)\n```\n";
        // LLaMA-Factory's tool_format swaps the function slot for {{content}} + eos: no newline after <|im_end|>.
        string call = "Action: f\nAction Input: {\"x\": \"1\"}<|im_end|>";
        Assert.Equal(
            $"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n{call}"
            + "<|im_start|>user\n<tool_response>\nR\n</tool_response><|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
            Fx.Tokenizer.Decode(example.InputIds));
        Assert.Equal(call + "A<|im_end|>\n", Fx.Tokenizer.Decode(example.Labels.Where(l => l != -100).ToArray()));
    }

    [Fact]
    public void TrainOnPromptWithMaskHistoryIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            Encode(new DataArguments { TrainOnPrompt = true, MaskHistory = true }, """{"file_name": "x.json"}""", """{"instruction": "Hi", "output": "Yo"}"""));
        // The config parser's message (ConfigParsingTests), from the same rule.
        Assert.Equal("mask_history: cannot be combined with train_on_prompt", e.Message);
    }
}
