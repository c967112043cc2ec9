using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Inference;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>
/// The official <c>openai</c> npm client against the live server (tests/clients/openai-node). It runs when node is on
/// PATH and the package is installed there (<c>npm ci</c> in that folder; .ci/run does it); otherwise it is skipped
/// with the reason.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class OpenAiNodeClientTests(ApiServerFixture fx)
{
    [NodeClientFact("openai-node", "openai")]
    public async Task TheOfficialOpenAiClientChatsStreamsListsModelsAndSeesErrors()
    {
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt([new(ChatRole.User, "Hello from the openai client")]), 8);
        using var only = ServedModel.Load("tiny", fx.ModelDir, [], "auto", null, ApiServerFixture.ContextLength);
        await using var oneModel = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, [only]);

        var result = await NodeClients.RunCheckAsync("openai-node",
            new Uri(fx.Server.Address, "v1").ToString(), "tiny", "no-key-needed", new Uri(oneModel.Address, "v1").ToString());

        Assert.Equal(expected, (string)result["content"]!);
        Assert.Equal("length", (string)result["finish_reason"]!);
        Assert.Equal(8, (int)result["usage"]!["completion_tokens"]!);
        Assert.Equal(expected, (string)result["streamed"]!);
        Assert.Equal("length", (string)result["stream_finish_reason"]!);
        Assert.Equal(8, (int)result["stream_usage"]!["completion_tokens"]!);
        Assert.Equal(404, (int)result["unknown_model_status"]!);
        Assert.Equal(["tiny", "lora-a"], result["models"]!.AsArray().Select(m => (string)m!));
        // LLaMA-Factory's habit: model "test" to a one-model server.
        Assert.Equal("tiny", (string)result["any_name"]!["model"]!);
        Assert.Equal(expected, (string)result["any_name"]!["content"]!);
    }

    [NodeClientFact("openai-node", "openai")]
    public async Task TheOpenAiClientStreamsToolCallsForcesThemAndGetsJson()
    {
        var result = await NodeClients.RunCheckAsync("openai-node", new Uri(fx.Server.Address, "v1").ToString(), "tiny", "no-key-needed");

        // The client's stream helper assembled the tool-call deltas into a call.
        Assert.Equal("tool_calls", (string)result["tool_stream"]!["finish_reason"]!);
        var streamedCall = result["tool_stream"]!["tool_calls"]![0]!;
        Assert.StartsWith("call_", (string)streamedCall["id"]!);
        Assert.Equal("set_alarm", (string)streamedCall["function"]!["name"]!);
        var alarm = JsonDocument.Parse((string)streamedCall["function"]!["arguments"]!).RootElement;
        Assert.True(alarm.GetProperty("hour").TryGetInt64(out _));
        Assert.Contains(alarm.GetProperty("on").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });

        Assert.Equal("tool_calls", (string)result["required"]!["finish_reason"]!);
        Assert.Contains((string)result["required"]!["tool_calls"]![0]!["function"]!["name"]!, new[] { "get_time", "set_alarm" });

        // The random model is cut inside its first key, but what it wrote stays a JSON object's beginning.
        string jsonObject = (string)result["json_object"]!["content"]!;
        Assert.StartsWith("{", jsonObject);
        Assert.NotNull(JsonGrammar.Start(JsonSchema.AnyObject).Advance(jsonObject));

        Assert.Equal("stop", (string)result["json_schema"]!["finish_reason"]!);
        var flags = JsonDocument.Parse((string)result["json_schema"]!["content"]!).RootElement;
        Assert.Contains(flags.GetProperty("ok").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Contains(flags.GetProperty("level").GetInt32(), new[] { 1, 2, 3 });
    }
}
