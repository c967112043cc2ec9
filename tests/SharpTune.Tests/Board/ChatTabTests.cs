using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Board;
using SharpTune.Chat;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Board;

/// <summary>
/// The chat tab's endpoints over real HTTP on loopback: the model loads in the background, the reply streams as JSON
/// lines with the trained identity, one model at a time, the thinking toggle reaches the prompt, and the endpoints
/// keep to the roots, the CSRF rule and the body limit. The tests share one board, so each leaves no model loaded.
/// </summary>
[Collection(TrainedBoardCollection.Name)]
public sealed class ChatTabTests(TrainedBoardSite site)
{
    private static JsonObject Selection(string? template = null, params string[] adapters) => new()
    {
        ["model"] = "models/tiny",
        ["adapters"] = new JsonArray(adapters.Select(a => (JsonNode)a).ToArray()),
        ["template"] = template ?? "auto",
        ["quantization_bit"] = null,
    };

    /// <summary>Loads and waits until the model is loaded (or the load failed); returns the last status.</summary>
    internal static async Task<JsonObject> LoadAsync(BoardClient client, JsonObject selection) =>
        await WaitAsync(client, await client.PostJsonAsync("/api/chat/load", selection));

    private static async Task<JsonObject> WaitAsync(BoardClient client, JsonObject status)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); status["state"]!.GetValue<string>() == "loading" && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(100);
            status = await client.GetJsonAsync("/api/chat/status");
        }
        return status;
    }

    /// <summary>The reply's lines: the streamed pieces in order, and the closing line.</summary>
    internal static async Task<(List<string> Pieces, JsonObject Done)> ReplyAsync(BoardClient client, JsonObject body)
    {
        using var reply = await client.PostAsync("/api/chat/reply", body);
        string text = await reply.Content.ReadAsStringAsync();
        Assert.True(reply.IsSuccessStatusCode, $"{(int)reply.StatusCode}: {text}");
        Assert.Equal("application/x-ndjson", reply.Content.Headers.ContentType?.MediaType);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.True(lines[^1]["done"]?.GetValue<bool>(), text);
        return (lines.SkipLast(1).Select(l => l["text"]!.GetValue<string>()).ToList(), lines[^1]);
    }

    private static JsonObject Ask(string question, params (string Key, JsonNode? Value)[] extra)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
            ["temperature"] = 0,
            ["max_tokens"] = 40,
        };
        foreach (var (key, value) in extra) body[key] = value;
        return body;
    }

    [Fact]
    public async Task TheAdapterLoadsInTheBackground_AndStreamsTheTrainedIdentity()
    {
        using var client = await site.ClientAsync();
        var first = await client.PostJsonAsync("/api/chat/load", Selection(null, TrainedBoardSite.AdapterRun));
        // The load request returns at once; the server answers other requests while the model loads.
        Assert.Equal("loading", first["state"]!.GetValue<string>());
        Assert.Equal(["models/tiny"], (await client.GetJsonAsync("/api/models"))["models"]!.AsArray().Select(m => m!.GetValue<string>()));
        try
        {
            var status = await WaitAsync(client, first);
            Assert.Equal("loaded", status["state"]!.GetValue<string>());
            Assert.Equal(TrainedBoardSite.AdapterRun, status["adapters"]![0]!.GetValue<string>());
            Assert.False(status["thinking"]!.GetValue<bool>());

            foreach (var (question, answer) in TrainedBoardSite.Identity)
            {
                var (pieces, done) = await ReplyAsync(client, Ask(question));
                Assert.Equal(answer, string.Concat(pieces));
                Assert.True(pieces.Count > 1, "the reply should arrive in pieces");
                Assert.Equal("stop", done["finish_reason"]!.GetValue<string>());
            }

            // A second model while one is loaded is refused: the board holds one at a time.
            using var second = await client.PostAsync("/api/chat/load", Selection());
            var (status409, error) = await BoardClient.ErrorOf(second);
            Assert.Equal(HttpStatusCode.Conflict, status409);
            Assert.Contains("unload it first", error);
        }
        finally
        {
            await client.PostJsonAsync("/api/chat/unload", new JsonObject());
        }
        Assert.Equal("empty", (await client.GetJsonAsync("/api/chat/status"))["state"]!.GetValue<string>());
        var (noModel, noModelError) = await BoardClient.ErrorOf(await client.PostAsync("/api/chat/reply", Ask("hi")));
        Assert.Equal(HttpStatusCode.Conflict, noModel);
        Assert.Contains("no chat model is loaded", noModelError);
    }

    [Fact]
    public async Task TheThinkingToggle_ReachesTheQwen3Prompt_AndTheSystemPromptToo()
    {
        using var client = await site.ClientAsync();
        var status = await LoadAsync(client, Selection("qwen3"));
        try
        {
            Assert.Equal("loaded", status["state"]!.GetValue<string>());
            Assert.True(status["thinking"]!.GetValue<bool>());
            string modelDir = site.PathOf("models/tiny");
            var tokenizer = Tokenizer.FromDirectory(modelDir);
            var template = ChatTemplates.ForModel("qwen3", modelDir, tokenizer);
            ChatMessage[] messages = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "hi")];
            var conversation = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "Be brief." }, new JsonObject { ["role"] = "user", ["content"] = "hi" });
            foreach (bool? thinking in new bool?[] { null, true, false })
            {
                var body = new JsonObject { ["messages"] = conversation.DeepClone(), ["temperature"] = 0, ["max_tokens"] = 4 };
                if (thinking is bool on) body["enable_thinking"] = on;
                var (_, done) = await ReplyAsync(client, body);
                int expected = tokenizer.Encode(template.Render(messages, addGenerationPrompt: true, enableThinking: thinking)).Length;
                Assert.Equal(expected, done["prompt_tokens"]!.GetValue<int>());
            }
            // Off adds the empty thought to the prompt, so the prompts differ.
            Assert.NotEqual(tokenizer.Encode(template.Render(messages, true, enableThinking: false)).Length, tokenizer.Encode(template.Render(messages, true)).Length);

            var (status400, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/chat/reply", Ask("hi", ("enable_thinking", "yes"))));
            Assert.Equal(HttpStatusCode.BadRequest, status400);
            Assert.Contains("enable_thinking", error);
        }
        finally
        {
            await client.PostJsonAsync("/api/chat/unload", new JsonObject());
        }
    }

    [Fact]
    public async Task AFailedLoad_IsReportedInTheStatus_AndAnInvalidRequestNamesItsField()
    {
        using var client = await site.ClientAsync();
        // saves/ itself is inside the roots but is no adapter: the load starts, fails in the background, and says why.
        var status = await LoadAsync(client, Selection(null, "saves"));
        Assert.Equal("failed", status["state"]!.GetValue<string>());
        Assert.Contains("adapter_config.json", status["error"]!.GetValue<string>());
        await client.PostJsonAsync("/api/chat/unload", new JsonObject());
        Assert.Equal("empty", (await client.GetJsonAsync("/api/chat/status"))["state"]!.GetValue<string>());

        Assert.Equal("loaded", (await LoadAsync(client, Selection()))["state"]!.GetValue<string>());
        try
        {
            foreach (var (body, field) in new[]
            {
                (Ask("hi", ("temperature", 5)), "temperature"),
                (Ask("hi", ("tools", "not a list")), "tools"),
                (Ask("hi", ("model", "other")), "model"),
                (new JsonObject { ["messages"] = new JsonArray() }, "messages"),
            })
            {
                var (status400, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/chat/reply", body));
                Assert.Equal(HttpStatusCode.BadRequest, status400);
                Assert.Contains(field, error);
            }
        }
        finally
        {
            await client.PostJsonAsync("/api/chat/unload", new JsonObject());
        }
    }

    [Fact]
    public async Task TheChatEndpoints_KeepToTheRoots_TheCsrfRule_AndTheBodyLimit()
    {
        using var client = await site.ClientAsync();
        string outside = Path.GetTempPath();
        foreach (var selection in new[]
        {
            new JsonObject { ["model"] = outside },
            new JsonObject { ["model"] = "models/tiny", ["adapters"] = new JsonArray((JsonNode)"models/../../x") },
            new JsonObject { ["model"] = "models/tiny", ["adapters"] = new JsonArray((JsonNode)"models/tiny") },
        })
        {
            var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/chat/load", selection));
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Contains("is outside the folders this board may use", error);
        }
        Assert.Equal("empty", (await client.GetJsonAsync("/api/chat/status"))["state"]!.GetValue<string>());

        foreach (string path in new[] { "/api/chat/load", "/api/chat/unload", "/api/chat/reply" })
        {
            var bare = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent("""{"model":"models/tiny"}""", Encoding.UTF8, "application/json") };
            var (status, error) = await BoardClient.ErrorOf(await client.Http.SendAsync(bare));
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Contains("X-CSRF-Token", error);
        }
        Assert.Equal("empty", (await client.GetJsonAsync("/api/chat/status"))["state"]!.GetValue<string>());

        var huge = Ask(new string('x', (int)new BoardOptions().MaxRequestBodyBytes));
        var (tooLarge, limitError) = await BoardClient.ErrorOf(await client.PostAsync("/api/chat/reply", huge));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge);
        Assert.Contains("limit", limitError);
    }
}
