using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Chat;
using SharpTune.Data;
using SharpTune.Inference;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>The OpenAI-compatible server over real HTTP on a loopback port, against texts from <see cref="Generator"/>.</summary>
[Collection(ApiCollection.Name)]
public sealed class ApiServerTests(ApiServerFixture fx)
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Hello, who are you?")];
    private static object[] HelloJson => [new { role = "user", content = "Hello, who are you?" }];

    private static string ContentOf(JsonNode response) => (string)response["choices"]![0]!["message"]!["content"]!;

    [Fact]
    public async Task GreedyChatCompletionIsTheGeneratorsReplyWithUsage()
    {
        int[] prompt = fx.ChatPrompt(Hello);
        var (expected, result) = fx.Greedy(fx.ReferenceBase, prompt, 8);

        var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 8 });

        Assert.Equal(200, status);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.StartsWith("chatcmpl-", (string)body["id"]!);
        Assert.Equal("chat.completion", (string)body["object"]!);
        Assert.Equal("tiny", (string)body["model"]!);
        Assert.Equal("assistant", (string)body["choices"]![0]!["message"]!["role"]!);
        Assert.Equal(expected, ContentOf(body));
        Assert.Equal("length", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.Equal(prompt.Length, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(8, (int)body["usage"]!["completion_tokens"]!);
        Assert.Equal(prompt.Length + 8, (int)body["usage"]!["total_tokens"]!);
    }

    [Fact]
    public async Task StreamedChatSendsRoleThenDeltasThenFinishUsageAndDone()
    {
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Hello), 8);

        var (status, contentType, events) = await fx.PostStreamAsync("/v1/chat/completions",
            new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 8, stream = true, stream_options = new { include_usage = true } });

        Assert.Equal(200, status);
        Assert.Equal("text/event-stream", contentType);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", (string)c["object"]!));
        Assert.Single(chunks.Select(c => (string)c["id"]!).Distinct());
        Assert.Equal("assistant", (string)chunks[0]["choices"]![0]!["delta"]!["role"]!);
        var deltas = chunks[1..^2].Select(c => (string)c["choices"]![0]!["delta"]!["content"]!).ToList();
        Assert.Equal(expected, string.Concat(deltas));
        Assert.True(deltas.Count > 1, "the reply arrives in several pieces");
        Assert.Equal("length", (string)chunks[^2]["choices"]![0]!["finish_reason"]!);
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(8, (int)chunks[^1]["usage"]!["completion_tokens"]!);
        Assert.All(chunks[..^1], c => Assert.Null(c["usage"]));
    }

    [Fact]
    public async Task CompletionsContinueTheRawPromptWithoutTemplate()
    {
        const string text = "The capital of France is";
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.Tokenizer.Encode(text), 6);

        var (status, body) = await fx.PostAsync("/v1/completions", new { model = "tiny", prompt = text, temperature = 0, max_tokens = 6 });
        var (_, _, events) = await fx.PostStreamAsync("/v1/completions", new { model = "tiny", prompt = text, temperature = 0, max_tokens = 6, stream = true });

        Assert.Equal(200, status);
        Assert.Equal("text_completion", (string)body["object"]!);
        Assert.Equal(expected, (string)body["choices"]![0]!["text"]!);
        Assert.Equal(fx.Tokenizer.Encode(text).Length, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Equal(expected, string.Concat(chunks.Select(c => (string)c["choices"]![0]!["text"]!)));
        Assert.Equal("length", (string)chunks[^1]["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task OpenAisDefaultOfSixteenTokensForCompletions()
    {
        var (_, body) = await fx.PostAsync("/v1/completions", new { model = "tiny", prompt = "Once upon a time", temperature = 0 });
        Assert.Equal(16, (int)body["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task ModelsListsTheBaseAndEachAdapterAndTheAdapterIdServesTheAdapter()
    {
        var models = JsonNode.Parse(await fx.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string)models["object"]!);
        Assert.Equal(["tiny", "lora-a"], models["data"]!.AsArray().Select(m => (string)m!["id"]!));
        Assert.All(models["data"]!.AsArray(), m => Assert.Equal("model", (string)m!["object"]!));

        int[] prompt = fx.ChatPrompt(Hello);
        var (expectedAdapter, _) = fx.Greedy(fx.ReferenceAdapter, prompt, 8);
        var (expectedBase, _) = fx.Greedy(fx.ReferenceBase, prompt, 8);
        Assert.NotEqual(expectedBase, expectedAdapter);
        var (_, body) = await fx.PostAsync("/v1/chat/completions", new { model = "lora-a", messages = HelloJson, temperature = 0, max_tokens = 8 });
        Assert.Equal(expectedAdapter, ContentOf(body));

        var health = await fx.HealthAsync();
        Assert.Equal("ok", (string)health["status"]!);
    }

    [Fact]
    public async Task StopStringsCutTheReplyStreamedOrNot()
    {
        var (full, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Hello), 12);
        string stop = full.Substring(full.Length / 2, 2);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];

        var (_, body) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 12, stop = new[] { "\u0001never", stop } });
        var (_, _, events) = await fx.PostStreamAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 12, stop, stream = true });

        Assert.Equal(expected, ContentOf(body));
        Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Equal(expected, string.Concat(chunks.Select(c => (string?)c["choices"]![0]!["delta"]!["content"] ?? "")));
        Assert.Equal("stop", (string)chunks[^1]["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task ContentPartsToolMessagesAndToolsAreRenderedWithTheTemplate()
    {
        const string tools = """[{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]""";
        ChatMessage[] conversation =
        [
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, "", [new ToolCall("get_weather", """{"city": "Paris"}""")]),
            new(ChatRole.Tool, "sunny"),
        ];
        var request = JsonNode.Parse($$$"""
            {"model": "tiny", "temperature": 0, "max_tokens": 4, "tools": {{{tools}}},
             "messages": [
               {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
               {"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}
            """)!;
        int[] prompt = fx.ChatPrompt(conversation, tools);
        var (expected, _) = fx.Greedy(fx.ReferenceBase, prompt, 4);

        using var response = await fx.Http.PostAsync("/v1/chat/completions", new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(prompt.Length, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(expected, ContentOf(body));
        Assert.Contains("get_weather", fx.Template.Render(conversation, true, tools));
    }

    [Fact]
    public async Task TheApiChatAndTrainingRenderAConversationToTheSameIds()
    {
        const string system = "You are a terse assistant.";
        ChatMessage[] conversation =
        [
            new(ChatRole.User, "What is 2 + 2?"),
            new(ChatRole.Assistant, "4."),
            new(ChatRole.User, "And 3 + 3?"),
        ];
        var request = new
        {
            model = "tiny", temperature = 0, max_tokens = 1,
            messages = new[]
            {
                new { role = "system", content = system },
                new { role = "user", content = "What is 2 + 2?" },
                new { role = "assistant", content = "4." },
                new { role = "user", content = "And 3 + 3?" },
            },
        };

        int[] api = fx.Base.EncodeChat([new(ChatRole.System, system), .. conversation], null);
        int[] chat = new ChatSession(fx.ReferenceBase, fx.Tokenizer, fx.Template, system).PromptIds(conversation);
        // Training encodes the same turns plus the answer to the last question; its ids up to that answer are the prompt.
        var training = new SupervisedProcessor(fx.Tokenizer, fx.Template, cutoffLen: 4096, trainOnPrompt: false, maskHistory: false)
            .Encode(new AlignedExample([.. conversation, new(ChatRole.Assistant, "6.")], system, null));
        var (_, served) = await fx.PostAsync("/v1/chat/completions", request);

        Assert.Equal(chat, api);
        Assert.Equal(api, training.InputIds[..api.Length]);
        Assert.Equal(-100, training.Labels[api.Length - 1]);
        Assert.All(training.Labels[api.Length..], label => Assert.NotEqual(-100, label));
        Assert.Equal(api.Length, (int)served["usage"]!["prompt_tokens"]!);
        int[] systemBlock = fx.Tokenizer.Encode("<|im_start|>system\nYou are a terse assistant.<|im_end|>\n");
        Assert.Equal(systemBlock, api[..systemBlock.Length]);
    }

    [Fact]
    public async Task EightSimultaneousSampledStreamsEachEqualTheSameRequestServedAlone()
    {
        object Request(int seed, bool stream) => new { model = "tiny", messages = HelloJson, temperature = 0.9, top_p = 0.95, seed, max_tokens = 10, stream };
        static string Streamed(List<string> events) =>
            string.Concat(events[..^1].Select(e => (string?)JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"] ?? ""));

        var together = await Task.WhenAll(Enumerable.Range(1, 8).Select(seed => fx.PostStreamAsync("/v1/chat/completions", Request(seed, true))));
        var alone = new List<string>();
        foreach (int seed in Enumerable.Range(1, 8))
            alone.Add(ContentOf((await fx.PostAsync("/v1/chat/completions", Request(seed, false))).Body));

        Assert.All(together, t => Assert.Equal("[DONE]", t.Events[^1]));
        Assert.Equal(alone, together.Select(t => Streamed(t.Events)));
        Assert.True(alone.Distinct().Count() > 1, "different seeds sample different replies");
        var (expectedSeedOne, _) = fx.Generate(fx.ReferenceBase, fx.ChatPrompt(Hello),
            fx.Base.Defaults with { DoSample = true, Temperature = 0.9f, TopP = 0.95f, Seed = 1, MaxNewTokens = 10 });
        Assert.Equal(expectedSeedOne, alone[0]);
    }

    [Fact]
    public async Task ADisconnectedClientCancelsItsGenerationAndTheServerGoesOn()
    {
        long cancelledBefore = (long)(await fx.HealthAsync())["generations"]!["cancelled"]!;
        // A client of its own, disposed with its connection: a shared one would drain the stream to reuse the connection.
        using (var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = fx.Server.Address })
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = ApiServerFixture.Json(new { model = "tiny", messages = HelloJson, max_tokens = 8000, stream = true }),
        })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            int contentChunks = 0;
            while (contentChunks < 3 && await reader.ReadLineAsync() is string line)
                if (line.Contains("\"delta\":{\"content\"", StringComparison.Ordinal)) contentChunks++;
            Assert.Equal(3, contentChunks);
        }

        // Wait (without a time assertion) for the worker to see the cancellation; it would otherwise run 8000 tokens.
        for (int i = 0; i < 600 && (long)(await fx.HealthAsync())["generations"]!["cancelled"]! == cancelledBefore; i++)
            await Task.Delay(50);
        Assert.Equal(cancelledBefore + 1, (long)(await fx.HealthAsync())["generations"]!["cancelled"]!);

        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Hello), 4);
        var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson, temperature = 0, max_tokens = 4 });
        Assert.Equal(200, status);
        Assert.Equal(expected, ContentOf(body));
    }

    [Fact]
    public async Task StoppingTheServerEndsAnInFlightStreamWithAnErrorEvent()
    {
        // A second server on the fixture's model, used only while the main server is idle (the tests run in series).
        var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = ApiServerFixture.Json(new { model = "tiny", messages = HelloJson, max_tokens = 8000, stream = true }),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Contains("\"role\":\"assistant\"", await reader.ReadLineAsync());

        await server.DisposeAsync();
        var events = (await reader.ReadToEndAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        var last = JsonNode.Parse(events[^1]["data: ".Length..])!;
        Assert.Equal("server_shutting_down", (string)last["error"]!["code"]!);
        Assert.DoesNotContain("data: [DONE]", events);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync("/health"));
    }

    private static void AssertError(int expectedStatus, string? expectedParam, string? expectedCode, (int Status, JsonNode Body) actual)
    {
        Assert.Equal(expectedStatus, actual.Status);
        var error = actual.Body["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(p => p.Key));
        Assert.False(string.IsNullOrWhiteSpace((string)error["message"]!));
        Assert.Equal(expectedParam, (string?)error["param"]);
        Assert.Equal(expectedCode, (string?)error["code"]);
    }

    [Fact]
    public async Task MalformedJsonIsA400()
    {
        using var response = await fx.Http.PostAsync("/v1/chat/completions", new StringContent("{\"model\": \"tiny\", \"messages\": [", Encoding.UTF8, "application/json"));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        AssertError(400, null, null, ((int)response.StatusCode, body));
        Assert.StartsWith("the request body is not valid JSON", (string)body["error"]!["message"]!);
        Assert.Equal("invalid_request_error", (string)body["error"]!["type"]!);
    }

    [Fact]
    public async Task AnOversizeBodyIsA413()
    {
        string big = new('x', (int)ApiServerFixture.BodyLimit + 1000);
        using var response = await fx.Http.PostAsync("/v1/chat/completions", ApiServerFixture.Json(new { model = "tiny", messages = new[] { new { role = "user", content = big } } }));
        AssertError(413, null, null, ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!));
    }

    [Fact]
    public async Task AnUnknownModelIsA404()
    {
        AssertError(404, "model", "model_not_found", await fx.PostAsync("/v1/chat/completions", new { model = "gpt-4o", messages = HelloJson }));
        AssertError(404, "model", "model_not_found", await fx.PostAsync("/v1/completions", new { model = "gpt-4o", prompt = "x" }));
    }

    [Fact]
    public async Task UnknownPathsAndWrongMethodsAnswerInOpenAisShape()
    {
        using var notFound = await fx.Http.GetAsync("/v1/nothing");
        AssertError(404, null, "unknown_url", (404, JsonNode.Parse(await notFound.Content.ReadAsStringAsync())!));
        Assert.Equal(404, (int)notFound.StatusCode);
        using var wrongMethod = await fx.Http.GetAsync("/v1/chat/completions");
        Assert.Equal(405, (int)wrongMethod.StatusCode);
        AssertError(405, null, "method_not_allowed", (405, JsonNode.Parse(await wrongMethod.Content.ReadAsStringAsync())!));
    }

    public static TheoryData<string, string> BadFields => new()
    {
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}""", "temperature" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": 0}""", "top_p" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}""", "n" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "presence_penalty": 0.5}""", "presence_penalty" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "frequency_penalty": -1}""", "frequency_penalty" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}""", "max_tokens" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8190}""", "max_tokens" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9000}""", "max_completion_tokens" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}""", "stop" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}""", "stream" },
        { """{"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}""", "messages[0].role" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}""", "messages[0].content[0].type" },
        { """{"model": "tiny", "messages": []}""", "messages" },
        { """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}""", "tool_choice" },
        { """{"messages": [{"role": "user", "content": "hi"}]}""", "model" },
    };

    [Theory]
    [MemberData(nameof(BadFields))]
    public async Task ABadFieldIsA400NamingIt(string body, string param)
    {
        using var response = await fx.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        AssertError(400, param, null, ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!));
    }

    [Fact]
    public async Task WithAKeyEveryV1RequestNeedsItAndHealthStaysOpen()
    {
        await using var keyed = await ApiServer.StartAsync(new ApiServerOptions { Port = 0, ApiKey = "s3cret-key" }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = keyed.Address };

        using (var missing = await client.GetAsync("/v1/models"))
            AssertError(401, null, "invalid_api_key", ((int)missing.StatusCode, JsonNode.Parse(await missing.Content.ReadAsStringAsync())!));
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-kez");
        AssertError(401, null, "invalid_api_key", await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = HelloJson }, client));
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-key");
        // Listing only: this second server shares the fixture's model, which must not run on two workers at once.
        using (var listed = await client.GetAsync("/v1/models"))
        {
            Assert.Equal(200, (int)listed.StatusCode);
            Assert.Equal("tiny", (string)JsonNode.Parse(await listed.Content.ReadAsStringAsync())!["data"]![0]!["id"]!);
        }
        client.DefaultRequestHeaders.Authorization = null;
        Assert.Equal("ok", (string)JsonNode.Parse(await client.GetStringAsync("/health"))!["status"]!);
    }
}
