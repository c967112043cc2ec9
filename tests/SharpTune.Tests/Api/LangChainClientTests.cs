using System.Text.Json.Nodes;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>
/// LangChain's <c>ChatOpenAI</c> (@langchain/openai, tests/clients/langchain) against the live server: chat,
/// streaming, streamed and forced tool calls, structured output by json_schema. Skipped with the reason without node
/// or without <c>npm ci</c> in that folder.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class LangChainClientTests(ApiServerFixture fx)
{
    [NodeClientFact("langchain", "@langchain/openai")]
    public async Task LangChainChatsStreamsCallsToolsAndGetsStructuredOutput()
    {
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt([new(ChatRole.User, "Hello from LangChain")]), 8);

        var result = await NodeClients.RunCheckAsync("langchain", new Uri(fx.Server.Address, "v1").ToString(), "tiny", "no-key-needed");

        Assert.Equal(expected, (string)result["content"]!);
        Assert.Equal("length", (string)result["finish_reason"]!);
        Assert.Equal(expected, (string)result["streamed"]!);

        var streamedCall = result["streamed_tool_calls"]!.AsArray().Single()!;
        Assert.Equal("set_alarm", (string)streamedCall["name"]!);
        Assert.StartsWith("call_", (string)streamedCall["id"]!);
        Assert.True(streamedCall["args"]!["hour"]!.AsValue().TryGetValue(out long _));
        Assert.Contains(streamedCall["args"]!["on"]!.GetValueKind(), new[] { System.Text.Json.JsonValueKind.True, System.Text.Json.JsonValueKind.False });

        var requiredCall = result["required_tool_calls"]!.AsArray().Single()!;
        Assert.Contains((string)requiredCall["name"]!, new[] { "get_time", "set_alarm" });

        var flags = result["structured"]!.AsObject();
        Assert.Equal(["level", "ok"], flags.Select(p => p.Key).Order());
        Assert.Contains((int)flags["level"]!, new[] { 1, 2, 3 });
    }
}
