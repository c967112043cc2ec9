using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>
/// What keeps one request from holding the server: the server's cap on max_tokens, the time limit per generation,
/// and /health showing who runs and how many wait. Servers of their own run on the fixture's model while the main
/// one is idle (the collection runs in series).
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiServingLimitTests(ApiServerFixture fx)
{
    private static object[] HelloJson => [new { role = "user", content = "Hello, who are you?" }];

    [Fact]
    public async Task MaxTokensOverTheServersLimitIsA400NamingItAndTheDefaultIsCutToIt()
    {
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0, MaxTokensLimit = 5 }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };

        var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, max_tokens = 12000 }, client);
        Assert.Equal(400, status);
        Assert.Equal("max_tokens", (string)body["error"]!["param"]!);
        Assert.Contains("limit of 5 tokens", (string)body["error"]!["message"]!);
        Assert.Equal(400, (await fx.PostAsync("/v1/completions", new { model = "tiny", prompt = "x", max_tokens = 6 }, client)).Status);

        // Without max_tokens: the model's default (more than 5), cut to the limit.
        Assert.True(fx.Base.Defaults.MaxNewTokens > 5);
        var (okStatus, ok) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0 }, client);
        Assert.Equal(200, okStatus);
        Assert.Equal(5, (int)ok["usage"]!["completion_tokens"]!);
        Assert.Equal(5, (int)JsonNode.Parse(await client.GetStringAsync("/health"))!["limits"]!["max_tokens"]!);
    }

    [Fact]
    public async Task AGenerationOverTheTimeLimitEndsWithFinishReasonLengthAndItsText()
    {
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0, RequestTimeout = TimeSpan.FromSeconds(1) }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };

        var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 8000 }, client);

        Assert.Equal(200, status);
        var choice = body["choices"]![0]!;
        Assert.Equal("length", (string)choice["finish_reason"]!);
        int generated = (int)body["usage"]!["completion_tokens"]!;
        Assert.InRange(generated, 1, 7999);
        // The text is the served greedy reply (the model's defaults, repetition penalty included) up to where the time limit cut it.
        var (expected, _) = fx.Generate(fx.ReferenceBase, fx.ChatPrompt([new(ChatRole.User, "Hello, who are you?")]),
            fx.Base.Defaults with { DoSample = false, MaxNewTokens = generated });
        Assert.Equal(expected, (string)choice["message"]!["content"]!);
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        Assert.Equal(1, (int)health["generations"]!["timed_out"]!);
        Assert.Equal(0, (int)health["generations"]!["completed"]!);
        Assert.Equal(1.0, (double)health["limits"]!["request_timeout_s"]!);
    }

    [Fact]
    public async Task AStreamOverTheTimeLimitEndsWithFinishReasonLengthAndDone()
    {
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0, RequestTimeout = TimeSpan.FromSeconds(1) }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };

        using var response = await client.PostAsync("/v1/chat/completions", ApiServerFixture.Json(new { model = "tiny", messages = HelloJson, max_tokens = 8000, stream = true }));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("data: [DONE]", events[^1]);
        Assert.Equal("length", (string)JsonNode.Parse(events[^2]["data: ".Length..])!["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task HealthNamesTheRunningRequestAndCountsTheWaitingOnes()
    {
        Task<(int Status, JsonNode Body)> waiting;
        // A client of its own, disposed with its connection (as in the disconnect test).
        using (var streamClient = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = fx.Server.Address })
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = ApiServerFixture.Json(new { model = "tiny", messages = HelloJson, max_tokens = 8000, stream = true }),
        })
        using (var response = await streamClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            string first = (await reader.ReadLineAsync())!;
            string id = (string)JsonNode.Parse(first["data: ".Length..])!["id"]!;

            waiting = fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 2 });
            JsonNode queue = (await fx.HealthAsync())["queue"]!;
            for (int i = 0; i < 200 && (int)queue["waiting"]! == 0; i++)
            {
                await Task.Delay(25);
                queue = (await fx.HealthAsync())["queue"]!;
            }

            Assert.Equal(1, (int)queue["waiting"]!);
            Assert.Equal(id, (string)queue["running"]!["id"]!);
            Assert.Equal("tiny", (string)queue["running"]!["model"]!);
            Assert.Equal(8000, (int)queue["running"]!["max_tokens"]!);
            Assert.Equal(fx.ChatPrompt([new(ChatRole.User, "Hello, who are you?")]).Length, (int)queue["running"]!["prompt_tokens"]!);
        }

        // The stream's client went away: its generation ends and the waiting request is served.
        Assert.Equal(200, (await waiting).Status);
        Assert.Equal(0, (int)(await fx.HealthAsync())["queue"]!["waiting"]!);
    }
}
