using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tests.Api;

/// <summary>
/// The reproductions of a fault-and-abuse run against the live server: what a web page may send it, bytes that are no
/// text, numbers that vanish in single precision, parameters OpenAI defines that are not served, and error messages
/// that must not echo what was sent.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiRequestRuleTests(ApiServerFixture fx)
{
    private const string Chat = """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 2}""";

    private static async Task<(int Status, JsonNode? Body)> ReadAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private async Task<(int Status, JsonNode? Body)> SendAsync(HttpRequestMessage request)
    {
        using var response = await fx.Http.SendAsync(request);
        return await ReadAsync(response);
    }

    private async Task<(int Status, JsonNode? Body)> PostRawAsync(string path, byte[] body, string? contentType = "application/json")
    {
        var content = new ByteArrayContent(body);
        if (contentType is not null) content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return await SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = content });
    }

    private static void AssertError(int status, string? param, string? code, (int Status, JsonNode? Body) actual)
    {
        Assert.True(status == actual.Status, $"expected {status}, got {actual.Status}: {actual.Body?.ToJsonString()}");
        var error = actual.Body!["error"]!;
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal(code, (string?)error["code"]);
    }

    private async Task<long> FailedGenerationsAsync() => (long)(await fx.HealthAsync())["generations"]!["failed"]!;

    [Fact]
    public async Task AWebPageOnAnotherHostNameCannotDriveTheServer()
    {
        // What a page at attacker.example, its name rebound to 127.0.0.1, sends without a CORS preflight.
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Chat, Encoding.UTF8, "text/plain") };
        request.Headers.Host = $"attacker.example:{fx.Server.Address.Port}";
        request.Headers.Add("Origin", $"http://attacker.example:{fx.Server.Address.Port}");

        AssertError(403, null, "host_not_allowed", await SendAsync(request));
    }

    [Theory]
    [InlineData("attacker.example", 403)]
    [InlineData("localhost", 200)]
    [InlineData("127.0.0.1", 200)]
    [InlineData("LocalHost", 200)]
    public async Task OnLoopbackOnlyTheServersOwnNamesAreAnswered(string host, int status)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Host = $"{host}:{fx.Server.Address.Port}";
        var (actual, body) = await SendAsync(request);
        Assert.Equal(status, actual);
        if (status == 403) Assert.Contains("--allowed-host", (string)body!["error"]!["message"]!);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData(null)]
    [InlineData("application/json; charset=latin1")]
    public async Task APostThatIsNotJsonIsA415(string? contentType)
    {
        AssertError(415, null, "unsupported_media_type", await PostRawAsync("/v1/chat/completions", Encoding.UTF8.GetBytes(Chat), contentType));
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("Application/JSON; charset=UTF-8")]
    public async Task JsonIsServedWithOrWithoutItsCharset(string contentType)
    {
        var (status, _) = await PostRawAsync("/v1/chat/completions", Encoding.UTF8.GetBytes(Chat), contentType);
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task ACrossOriginRequestOrPreflightIsRefusedWhenNoOriginIsAllowed()
    {
        var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "http://page.example");
        AssertError(403, null, "origin_not_allowed", await SendAsync(get));

        var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        preflight.Headers.Add("Origin", "http://page.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        using var response = await fx.Http.SendAsync(preflight);
        Assert.Equal(403, (int)response.StatusCode);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
    }

    public static TheoryData<string, byte[]> NotText => new()
    {
        // Raw bytes FF FE inside a string: not UTF-8.
        { "messages[0].content", [.. """{"model": "tiny", "messages": [{"role": "user", "content": "hi """u8, 0xFF, 0xFE, .. "\"}]}"u8] },
        { "messages[0].content", """{"model": "tiny", "messages": [{"role": "user", "content": "hi \ud800"}]}"""u8.ToArray() },
        { "stop[1]", """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "\udc00b"]}"""u8.ToArray() },
        { "tools[0].function.description", """{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "description": "\ud800"}}]}"""u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(NotText))]
    public async Task InvalidUtf8OrALoneSurrogateIsA400NamingTheField(string param, byte[] body)
    {
        long failed = await FailedGenerationsAsync();
        AssertError(400, param, null, await PostRawAsync("/v1/chat/completions", body));
        Assert.Equal(failed, await FailedGenerationsAsync());
    }

    [Fact]
    public async Task AFieldNameThatIsNotTextIsA400()
    {
        var (status, body) = await PostRawAsync("/v1/completions", [.. """{"model": "tiny", "prompt": "x", "a"""u8, 0xC3, .. "\": 1}"u8]);
        Assert.Equal(400, status);
        Assert.Contains("not valid", (string)body!["error"]!["message"]!);
        AssertError(400, "prompt", null, await PostRawAsync("/v1/completions", """{"model": "tiny", "prompt": "\ud83d"}"""u8.ToArray()));
    }

    [Theory]
    [InlineData("temperature", "1e-300")]
    [InlineData("temperature", "1e-46")]
    [InlineData("temperature", "1e-40")]
    [InlineData("top_p", "1e-300")]
    [InlineData("top_p", "1e-46")]
    [InlineData("temperature", "1e400")]
    [InlineData("presence_penalty", "-1e400")]
    public async Task ANumberThatVanishesOrOverflowsInFloatingPointIsA400(string field, string value)
    {
        long failed = await FailedGenerationsAsync();
        string body = $$"""{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "{{field}}": {{value}}}""";
        AssertError(400, field, null, await PostRawAsync("/v1/chat/completions", Encoding.UTF8.GetBytes(body)));
        AssertError(400, field, null, await PostRawAsync("/v1/completions", Encoding.UTF8.GetBytes(
            $$"""{"model": "tiny", "prompt": "hi", "max_tokens": 2, "{{field}}": {{value}}}""")));
        Assert.Equal(failed, await FailedGenerationsAsync());
    }

    [Fact]
    public async Task HeadHealthIs200()
    {
        using var response = await fx.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health"));
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task OpenAisDefaultValuesAreAccepted()
    {
        // What the openai npm client and LangChain send routinely, each at the value that asks for nothing extra.
        const string chat = """
            {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_completion_tokens": 2,
             "n": 1, "user": "u-1", "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "logprobs": false,
             "top_logprobs": null, "parallel_tool_calls": true, "store": false, "metadata": {"k": "v"}, "service_tier": "auto",
             "modalities": ["text"], "response_format": {"type": "text"}, "seed": 3, "stop": null, "stream": true,
             "stream_options": {"include_usage": true}, "prompt_cache_key": "k", "safety_identifier": "s", "audio": null,
             "tools": null, "tool_choice": null}
            """;
        var (status, _, events) = await fx.PostStreamAsync("/v1/chat/completions", JsonNode.Parse(chat)!);
        Assert.Equal(200, status);
        Assert.Equal("[DONE]", events[^1]);
        const string completion = """
            {"model": "tiny", "prompt": "hi", "max_tokens": 2, "n": 1, "best_of": 1, "echo": false, "user": "u",
             "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "logprobs": null, "suffix": null, "temperature": 0}
            """;
        Assert.Equal(200, (await PostRawAsync("/v1/completions", Encoding.UTF8.GetBytes(completion))).Status);
    }

    [Theory]
    [InlineData("temprature", "0.5", "unknown_parameter")]
    [InlineData("top_k", "5", "unknown_parameter")]
    [InlineData("logit_bias", """{"15": 100}""", null)]
    [InlineData("parallel_tool_calls", "false", null)]
    [InlineData("store", "true", null)]
    [InlineData("modalities", """["text", "audio"]""", null)]
    [InlineData("top_logprobs", "3", null)]
    [InlineData("service_tier", "\"priority\"", null)]
    [InlineData("audio", """{"voice": "alloy", "format": "mp3"}""", null)]
    [InlineData("prediction", """{"type": "content", "content": "x"}""", null)]
    [InlineData("reasoning_effort", "\"low\"", null)]
    [InlineData("verbosity", "\"low\"", null)]
    [InlineData("web_search_options", "{}", null)]
    [InlineData("functions", """[{"name": "f"}]""", null)]
    [InlineData("function_call", "\"auto\"", null)]
    public async Task AnUnknownParameterOrAKnownOneAtAValueNotServedIsA400NamingIt(string field, string value, string? code)
    {
        string body = $$"""{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "{{field}}": {{value}}}""";
        AssertError(400, field, code, await PostRawAsync("/v1/chat/completions", Encoding.UTF8.GetBytes(body)));
    }

    [Theory]
    [InlineData("messages", """[{"role": "user", "content": "hi"}]""", "unknown_parameter")]
    [InlineData("logprobs", "2", null)]
    [InlineData("logit_bias", """{"15": -100}""", null)]
    public async Task CompletionsRefuseWhatTheyDoNotServeToo(string field, string value, string? code)
    {
        string body = $$"""{"model": "tiny", "prompt": "hi", "max_tokens": 2, "{{field}}": {{value}}}""";
        AssertError(400, field, code, await PostRawAsync("/v1/completions", Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public async Task ErrorsQuoteOnlyAShortCutOfWhatWasSent()
    {
        string huge = new('m', 5000);
        var messages = new[] { new { role = "user", content = "hi" } };
        var answers = new List<(int Status, JsonNode Body)>
        {
            await fx.PostAsync("/v1/chat/completions", new { model = huge, messages }),
            await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages = new[] { new { role = huge, content = "hi" } } }),
            await fx.PostAsync("/v1/chat/completions", new { model = "tiny", messages, tool_choice = huge }),
            await PostRawAsync("/v1/chat/completions", Encoding.UTF8.GetBytes($$"""{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "{{huge}}": 1}""")) is var (s, b) ? (s, b!) : default,
        };
        using (var longPath = await fx.Http.GetAsync("/v1/" + new string('p', 3000)))
            answers.Add(((int)longPath.StatusCode, JsonNode.Parse(await longPath.Content.ReadAsStringAsync())!));

        Assert.All(answers, a =>
        {
            string message = (string)a.Body["error"]!["message"]!;
            Assert.InRange(a.Status, 400, 404);
            Assert.True(message.Length < 300, $"{message.Length} characters: {message[..Math.Min(message.Length, 300)]}");
            Assert.Contains("…", message);
        });
    }
}
