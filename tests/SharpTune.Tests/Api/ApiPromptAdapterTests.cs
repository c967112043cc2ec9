using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Templates;
using SharpTune.IO.Safetensors;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Api;

/// <summary>
/// Prompt-learning adapters served unmerged over real HTTP: a PEFT prompt-tuning folder alone, and a prefix-tuning
/// folder stacked after the fixture's LoRA adapter, each answering what the generator gives on a model loaded with the
/// same adapters.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiPromptAdapterTests(ApiServerFixture fx)
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Hello, who are you?")];
    private static object[] HelloJson => [new { role = "user", content = "Hello, who are you?" }];

    /// <summary>A PEFT prompt-learning folder for the tiny preset (hidden 64, 2 layers, 2 kv heads of 16) with seeded values.</summary>
    private static string WritePromptAdapter(string dir, string peftType, int tokens)
    {
        Directory.CreateDirectory(dir);
        bool prefix = peftType == "PREFIX_TUNING";
        int tokenDim = prefix ? 32 : 64, width = prefix ? 2 * 2 * tokenDim : tokenDim;
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"),
            $$"""{"peft_type": "{{peftType}}", "task_type": "CAUSAL_LM", "num_virtual_tokens": {{tokens}}, "token_dim": {{tokenDim}}, "num_transformer_submodules": 1, "num_attention_heads": {{(prefix ? 2 : 4)}}, "num_layers": 2, "base_model_name_or_path": "tiny"}""");
        var random = new Random(5);
        var values = Enumerable.Range(0, tokens * width).Select(_ => (float)(2 * (random.NextDouble() - 0.5))).ToArray();
        SafetensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), [("prompt_embeddings", [tokens, width], values)]);
        return dir;
    }

    [Fact]
    public async Task APromptAdapterAndAPrefixAfterLora_ServeTheGeneratorsReplies()
    {
        string prompt = WritePromptAdapter(Path.Combine(fx.Root, "prompt-a"), "PROMPT_TUNING", 5);
        string prefix = WritePromptAdapter(Path.Combine(fx.Root, "prefix-a"), "PREFIX_TUNING", 3);
        var served = new (string Id, string[] Adapters)[] { ("prompt-a", [prompt]), ("lora-prefix", [fx.AdapterDir, prefix]) };
        var models = served.Select(m => ServedModel.Load(m.Id, fx.ModelDir, m.Adapters, "auto", null, ApiServerFixture.ContextLength)).ToArray();
        try
        {
            await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, models);
            using var http = new HttpClient { BaseAddress = server.Address };
            int[] ids = fx.ChatPrompt(Hello);
            foreach (var (id, adapters) in served)
            {
                using var reference = DecoderModel.LoadForGeneration(fx.ModelDir, adapterDirectories: adapters);
                // The adapter changes the model: its logits differ from those of the base (or the LoRA alone).
                using var without = DecoderModel.LoadForGeneration(fx.ModelDir, adapterDirectories: adapters[..^1]);
                int[][] row = [ids];
                int[][] mask = [Enumerable.Repeat(1, ids.Length).ToArray()];
                Assert.NotEqual(without.Evaluate(row, mask).Logits, reference.Evaluate(row, mask).Logits);

                var (expected, _) = fx.Greedy(reference, ids, 8);
                var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = id, messages = HelloJson, temperature = 0, max_tokens = 8 }, http);
                Assert.Equal(200, status);
                Assert.Equal(expected, (string)body["choices"]![0]!["message"]!["content"]!);
            }
        }
        finally
        {
            foreach (var model in models) model.Dispose();
        }
    }
}
