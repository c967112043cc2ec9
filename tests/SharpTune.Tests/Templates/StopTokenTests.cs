using System.Text.Json.Nodes;
using SharpTune.Chat;
using SharpTune.Evaluation.Prediction;
using SharpTune.Export;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tests.IO;
using SharpTune.Tests.Peft;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Templates;

/// <summary>
/// Chat (and the API server), prediction and export stop at the same template tokens: LLaMA-Factory's
/// get_stop_token_ids, the template's eos (its first stop word when it replaces the eos) and its stop words.
/// </summary>
public sealed class StopTokenTests
{
    [Theory]
    [InlineData("qwen")]     // replaces the eos with <|im_end|>
    [InlineData("alpaca")]   // keeps the tokenizer's eos, <|endoftext|>, and has no stop words
    public void ChatPredictionAndExportAllStopAtTheTemplatesEosAndStopWords(string name)
    {
        using var dir = new TempDir();
        string model = LoraTestFolders.ChatReadyBase(dir.File("base"));
        File.WriteAllText(Path.Combine(model, "generation_config.json"), "{}");
        var tokenizer = Tokenizer.FromDirectory(model);
        var template = ChatTemplates.ForModel(name, model, tokenizer);
        int eos = tokenizer.TokenToId(template.EosToken!)!.Value;

        var chat = ChatSession.WithTemplateStops(new GenerationOptions(), tokenizer, template).StopTokenIds;
        var prediction = PredictionRun.StopTokenIds(tokenizer, template, model);
        var export = JsonNode.Parse(ExportGenerationConfig.Build(model, ModelConfig.Load(Path.Combine(model, "config.json")), template))!["eos_token_id"]!;
        int[] exported = export is JsonArray array ? array.Select(n => n!.GetValue<int>()).ToArray() : [export.GetValue<int>()];

        Assert.Contains(eos, chat);
        Assert.Subset(prediction.ToHashSet(), chat.ToHashSet());
        Assert.Subset(exported.ToHashSet(), chat.ToHashSet());
        Assert.Equal(eos, exported[0]);
    }
}
