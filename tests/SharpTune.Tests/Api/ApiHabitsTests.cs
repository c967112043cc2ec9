using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Inference;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>
/// What LLaMA-Factory users and OpenAI clients send out of habit, over real HTTP: any model name to a one-model
/// server, streaming with tools, forced tool_choice and JSON response formats (constrained decoding on the random
/// tiny model, which never writes JSON by itself).
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiHabitsTests(ApiServerFixture fx)
{
    private static readonly ChatMessage[] Weather = [new(ChatRole.User, "What is the weather in Paris?")];
    private static object[] WeatherJson => [new { role = "user", content = "What is the weather in Paris?" }];

    private const string ToolsJson = """
        [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"}, "days": {"type": "integer"}}, "required": ["city", "days"], "additionalProperties": false}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"], "additionalProperties": false}}},
         {"type": "function", "function": {"name": "set_alarm", "parameters": {"type": "object", "properties": {"hour": {"type": "integer"}, "on": {"type": "boolean"}}, "required": ["hour", "on"], "additionalProperties": false}}}]
        """;

    // The random tiny model almost never picks a token that closes a free string (a few dozen of 150k tokens), so
    // the calls and values that must end within the budget have bounded arguments: enums, integers, booleans.
    private static JsonNode BoundedTools => new JsonArray(Tools.AsArray().Skip(1).Select(t => t!.DeepClone()).ToArray());

    private static JsonNode Tools => JsonNode.Parse(ToolsJson)!;

    private static JsonNode Message(JsonNode response) => response["choices"]![0]!["message"]!;

    private static string FinishReasonOf(JsonNode response) => (string)response["choices"]![0]!["finish_reason"]!;

    [Fact]
    public async Task AOneModelServerAnswersAnyModelNameWithItsId()
    {
        using var only = ServedModel.Load("tiny", fx.ModelDir, [], "auto", null, ApiServerFixture.ContextLength);
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, [only]);
        using var client = new HttpClient { BaseAddress = server.Address };
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Weather), 4);

        var (status, body) = await fx.PostAsync("/v1/chat/completions", new { model = "test", messages = WeatherJson, temperature = 0, max_tokens = 4 }, client);
        var (completionStatus, completion) = await fx.PostAsync("/v1/completions", new { model = "gpt-3.5-turbo", prompt = "Hi", temperature = 0, max_tokens = 2 }, client);

        Assert.Equal(200, status);
        Assert.Equal("tiny", (string)body["model"]!);
        Assert.Equal(expected, (string)Message(body)["content"]!);
        Assert.Equal(200, completionStatus);
        Assert.Equal("tiny", (string)completion["model"]!);
        // The fixture's server has two ids, so there a name it does not serve stays an error.
        Assert.Equal(404, (await fx.PostAsync("/v1/chat/completions", new { model = "test", messages = WeatherJson, max_tokens = 1 })).Status);
    }

    /// <summary>
    /// The greedy reply a copy of the served model gives under the constraint the request asks for, straight from
    /// <see cref="Generator"/>, with the served defaults (the tiny preset's repetition_penalty included).
    /// </summary>
    private (string Text, GenerationResult Result) Constrained(ChatRequest request, int[] prompt, int maxTokens)
    {
        var result = new Generator(fx.ReferenceBase).Generate(prompt, fx.Base.Defaults with { MaxNewTokens = maxTokens, DoSample = false },
            constraint: ReplyConstraints.For(request, fx.Base));
        return (fx.Tokenizer.Decode(result.NewIds, skipSpecialTokens: true), result);
    }

    private static ChatRequest Read(object body) => ChatRequest.Read(JsonSerializer.SerializeToElement(body));

    [Fact]
    public async Task ANamedToolChoiceForcesThatCallWithArgumentsValidForItsSchema()
    {
        var body = new { model = "tiny", messages = WeatherJson, tools = Tools, tool_choice = new { type = "function", function = new { name = "set_alarm" } }, temperature = 0, max_tokens = 400 };
        int[] prompt = fx.ChatPrompt(Weather, Tools.ToJsonString());
        var (expectedText, expected) = Constrained(Read(body), prompt, 400);

        var (status, response) = await fx.PostAsync("/v1/chat/completions", body);

        Assert.Equal(200, status);
        Assert.Equal(FinishReason.Stop, expected.FinishReason);
        Assert.StartsWith("<tool_call>\n{\"name\": \"set_alarm\", \"arguments\": {", expectedText);
        Assert.EndsWith("}}\n</tool_call>", expectedText);
        Assert.Equal("tool_calls", FinishReasonOf(response));
        Assert.Equal(expected.NewIds.Length, (int)response["usage"]!["completion_tokens"]!);
        var call = Message(response)["tool_calls"]![0]!;
        Assert.StartsWith("call_", (string)call["id"]!);
        Assert.Equal("set_alarm", (string)call["function"]!["name"]!);
        var arguments = JsonNode.Parse((string)call["function"]!["arguments"]!)!.AsObject();
        Assert.Equal(["hour", "on"], arguments.Select(p => p.Key).Order());
        Assert.True(arguments["hour"]!.AsValue().TryGetValue(out long _));
        Assert.Contains(arguments["on"]!.GetValueKind(), new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Equal(ToolCallParser.Parse(expectedText).Calls[0].ArgumentsJson, (string)call["function"]!["arguments"]!);
    }

    [Fact]
    public async Task RequiredToolChoiceCallsOneOfTheToolsEvenWhenSampling()
    {
        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, tools = BoundedTools, tool_choice = "required", temperature = 0.9, seed = 5, max_tokens = 400 });

        Assert.Equal(200, status);
        Assert.Equal("tool_calls", FinishReasonOf(response));
        var call = Message(response)["tool_calls"]![0]!["function"]!;
        var arguments = JsonNode.Parse((string)call["arguments"]!)!.AsObject();
        switch ((string)call["name"]!)
        {
            case "set_alarm":
                Assert.Equal(["hour", "on"], arguments.Select(p => p.Key).Order());
                break;
            case "get_time":
                Assert.Contains((string)arguments["zone"]!, new[] { "UTC", "CET" });
                break;
            case var other:
                Assert.Fail($"called {other}, which is not one of the tools");
                break;
        }
    }

    [Fact]
    public async Task ToolChoiceNoneOffersNoTools()
    {
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Weather), 3);

        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, tools = Tools, tool_choice = "none", temperature = 0, max_tokens = 3 });

        Assert.Equal(200, status);
        Assert.Equal(fx.ChatPrompt(Weather).Length, (int)response["usage"]!["prompt_tokens"]!);
        Assert.Equal(expected, (string)Message(response)["content"]!);
    }

    [Fact]
    public async Task StreamingWithToolsSendsOpenAisToolCallDeltas()
    {
        var request = new { model = "tiny", messages = WeatherJson, tools = Tools, tool_choice = new { type = "function", function = new { name = "get_time" } }, temperature = 0, max_tokens = 40 };
        var (_, whole) = await fx.PostAsync("/v1/chat/completions", request);

        var (status, _, events) = await fx.PostStreamAsync("/v1/chat/completions", new { request.model, request.messages, request.tools, request.tool_choice, request.temperature, request.max_tokens, stream = true });

        Assert.Equal(200, status);
        Assert.Equal("[DONE]", events[^1]);
        var deltas = events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        Assert.Equal("assistant", (string)deltas[0]["delta"]!["role"]!);
        var calls = deltas.Where(d => d["delta"]!["tool_calls"] is not null).Select(d => d["delta"]!["tool_calls"]![0]!).ToList();
        Assert.Equal(2, calls.Count);
        Assert.Equal(0, (int)calls[0]["index"]!);
        Assert.StartsWith("call_", (string)calls[0]["id"]!);
        Assert.Equal("function", (string)calls[0]["type"]!);
        Assert.Equal("get_time", (string)calls[0]["function"]!["name"]!);
        Assert.Equal("", (string)calls[0]["function"]!["arguments"]!);
        Assert.Equal(0, (int)calls[1]["index"]!);
        Assert.Null(calls[1]["id"]);
        var wholeCall = Message(whole)["tool_calls"]![0]!["function"]!;
        Assert.Equal((string)wholeCall["arguments"]!, (string)calls[1]["function"]!["arguments"]!);
        // No text of the call leaks out as content.
        Assert.All(deltas, d => Assert.DoesNotContain("<tool_call>", (string?)d["delta"]!["content"] ?? ""));
        Assert.Equal("tool_calls", (string)deltas[^1]["finish_reason"]!);
    }

    [Fact]
    public async Task StreamingWithToolsButNoCallStreamsTheSameText()
    {
        var (expected, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Weather, Tools.ToJsonString()), 8);

        var (status, _, events) = await fx.PostStreamAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, tools = Tools, temperature = 0, max_tokens = 8, stream = true });

        Assert.Equal(200, status);
        var deltas = events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
        Assert.Equal(expected, string.Concat(deltas.Select(d => (string?)d["delta"]!["content"] ?? "")));
        Assert.Equal("length", (string)deltas[^1]["finish_reason"]!);
    }

    /// <remarks>
    /// The random model opens a key and, as it almost never picks a closing quote, is cut by max_tokens inside it:
    /// the reply is the constrained generator's, a prefix of a JSON object (the bounded schemas below finish whole).
    /// </remarks>
    [Fact]
    public async Task JsonObjectResponseFormatKeepsTheReplyInsideAJsonObject()
    {
        var body = new { model = "tiny", messages = WeatherJson, response_format = new { type = "json_object" }, temperature = 0, max_tokens = 40 };
        var (expectedText, _) = Constrained(Read(body), fx.ChatPrompt(Weather), 40);

        var (status, response) = await fx.PostAsync("/v1/chat/completions", body);

        Assert.Equal(200, status);
        string content = (string)Message(response)["content"]!;
        Assert.Equal(expectedText, content);
        Assert.StartsWith("{", content);
        Assert.NotNull(JsonGrammar.Start(JsonSchema.AnyObject).Advance(content));
        // The random model left alone writes no JSON: the constraint is what made this.
        var (free, _) = fx.Greedy(fx.ReferenceBase, fx.ChatPrompt(Weather), 40);
        Assert.Null(JsonGrammar.Start(JsonSchema.AnyObject).Advance(free));
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.8, 7)]
    [InlineData(1.0, 11)]
    public async Task JsonObjectResponseFormatWithABoundedSchemaGivesAWholeObject(double temperature, int seed)
    {
        var format = JsonNode.Parse("""
            {"type": "json_schema", "json_schema": {"name": "flags", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}, "level": {"enum": [1, 2, 3]}, "none": {"type": "null"}},
             "required": ["ok", "level", "none"], "additionalProperties": false}}}
            """);
        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, response_format = format, temperature, seed, max_tokens = 200 });

        Assert.Equal(200, status);
        string content = (string)Message(response)["content"]!;
        Assert.True(FinishReasonOf(response) == "stop", content);
        var flags = JsonDocument.Parse(content).RootElement;
        Assert.Equal(JsonValueKind.Object, flags.ValueKind);
        Assert.Contains(flags.GetProperty("ok").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Contains(flags.GetProperty("level").GetInt32(), new[] { 1, 2, 3 });
        Assert.Equal(JsonValueKind.Null, flags.GetProperty("none").ValueKind);
        Assert.Equal(3, flags.EnumerateObject().Count());
    }

    private const string PersonSchema = """
        {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "member": {"type": "boolean"},
         "tier": {"enum": ["gold", "silver"]}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
         "required": ["name", "age", "member", "tier", "note"], "additionalProperties": false}
        """;

    [Fact]
    public async Task JsonSchemaResponseFormatGivesAValueValidForTheSchema()
    {
        const double temperature = 0;
        const int seed = 1;
        var format = JsonNode.Parse($$$"""{"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {{{PersonSchema}}}}}""");
        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, response_format = format, temperature, seed, max_tokens = 400 });

        Assert.Equal(200, status);
        Assert.True(FinishReasonOf(response) == "stop", (string)Message(response)["content"]!);
        var person = JsonDocument.Parse((string)Message(response)["content"]!).RootElement;
        Assert.Equal(["age", "member", "name", "note", "tier"], person.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(JsonValueKind.String, person.GetProperty("name").ValueKind);
        Assert.True(person.GetProperty("age").TryGetInt64(out _));
        Assert.Contains(person.GetProperty("member").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Contains(person.GetProperty("tier").GetString(), new[] { "gold", "silver" });
        Assert.Contains(person.GetProperty("note").ValueKind, new[] { JsonValueKind.String, JsonValueKind.Null });
    }

    [Fact]
    public async Task AJsonReplyCutByMaxTokensEndsWithLength()
    {
        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, response_format = new { type = "json_object" }, temperature = 0, max_tokens = 2 });

        Assert.Equal(200, status);
        Assert.Equal("length", FinishReasonOf(response));
        Assert.Equal(2, (int)response["usage"]!["completion_tokens"]!);
        Assert.StartsWith("{", ((string)Message(response)["content"]!).TrimStart());
    }

    [Theory]
    [InlineData("""{"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^a"}}}""", "response_format.json_schema.schema", "'pattern'")]
    [InlineData("""{"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/a"}}}""", "response_format.json_schema.schema", "'$ref'")]
    [InlineData("""{"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}""", "response_format.json_schema.name", "required")]
    [InlineData("""{"type": "json_schema"}""", "response_format.json_schema", "name and a schema")]
    [InlineData("""{"type": "xml"}""", "response_format.type", "'json_schema'")]
    [InlineData("\"text\"", "response_format", "type")]
    public async Task AResponseFormatThatCannotBeServedIsA400NamingWhy(string format, string param, string says)
    {
        string body = $$"""{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "response_format": {{format}}}""";
        using var response = await fx.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Contains(says, (string)error["message"]!);
    }

    [Theory]
    [InlineData("""{"tool_choice": "required"}""", "tool_choice")]
    [InlineData("""{"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}""", "tool_choice.function.name")]
    [InlineData("""{"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}""", "tool_choice")]
    [InlineData("""{"tools": TOOLS, "tool_choice": "sometimes"}""", "tool_choice")]
    public async Task AToolChoiceThatCannotBeServedIsA400NamingIt(string fields, string param)
    {
        var body = JsonNode.Parse(fields.Replace("TOOLS", ToolsJson))!.AsObject();
        body["model"] = "tiny";
        body["messages"] = JsonNode.Parse("""[{"role": "user", "content": "hi"}]""");
        var (status, response) = await fx.PostAsync("/v1/chat/completions", body);

        Assert.Equal(400, status);
        Assert.Equal(param, (string?)response["error"]!["param"]);
    }

    [Fact]
    public async Task ForcingACallNeedsAToolFormatThatWritesCallsAsJson()
    {
        using var react = ServedModel.Load("tiny", fx.ModelDir, [], "auto", null, ApiServerFixture.ContextLength, toolFormat: "default");
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Port = 0 }, [react]);
        using var client = new HttpClient { BaseAddress = server.Address };

        var (status, response) = await fx.PostAsync("/v1/chat/completions",
            new { model = "tiny", messages = WeatherJson, tools = Tools, tool_choice = "required", max_tokens = 4 }, client);

        Assert.Equal(400, status);
        Assert.Equal("tool_choice", (string?)response["error"]!["param"]);
    }
}
