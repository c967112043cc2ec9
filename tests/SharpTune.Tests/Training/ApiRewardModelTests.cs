using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharpTune.Tokenization;
using SharpTune.Training.Ppo;

namespace SharpTune.Tests.Training;

/// <summary>
/// reward_model_type api against a reward server on loopback (Kestrel) that reads LLaMA-Factory's request body and
/// answers as the test scripts it: by default 1 for a message containing "yes", else 0.
/// </summary>
public sealed class ApiRewardModelTests : IAsyncLifetime
{
    private static readonly Tokenizer Qwen = Tokenizer.FromDirectory(TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"));

    private WebApplication _server = null!;
    private Uri _url = null!;
    private readonly ConcurrentQueue<JsonElement> _bodies = new();

    /// <summary>The reply to the next request, as status and body; null answers with the "yes" rule.</summary>
    private (int Status, string Body)? _scripted;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _server = builder.Build();
        _server.MapPost("/reward", async context =>
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body);
            _bodies.Enqueue(document.RootElement.Clone());
            if (_scripted is var (status, body))
            {
                context.Response.StatusCode = status;
                await context.Response.WriteAsync(body);
                return;
            }
            var scores = document.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetString()!.Contains("yes") ? 1.0 : 0.0);
            await context.Response.WriteAsJsonAsync(new { scores });
        });
        await _server.StartAsync();
        _url = new Uri(_server.Urls.Single() + "/reward");
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private double[] Score(params (string Query, string Response)[] pairs)
    {
        using var rewards = new ApiRewardModel(_url, Qwen, TimeSpan.FromSeconds(30));
        return rewards.Score([.. pairs.Select(p => Qwen.Encode(p.Query))], [.. pairs.Select(p => Qwen.Encode(p.Response))], CancellationToken.None);
    }

    [Fact]
    public void Posts_each_query_and_response_as_one_text_with_special_tokens_and_reads_the_scores_in_order()
    {
        const string Query = "<|im_start|>user\nSay it<|im_end|>\n<|im_start|>assistant\n";
        var scores = Score((Query, "no way<|im_end|>"), (Query, "yes, sure<|im_end|>"));

        Assert.Equal([0.0, 1.0], scores);
        var body = Assert.Single(_bodies);
        Assert.Equal("model", body.GetProperty("model").GetString());
        Assert.Equal([Query + "no way<|im_end|>", Query + "yes, sure<|im_end|>"],
            body.GetProperty("messages").EnumerateArray().Select(m => m.GetString()));
    }

    [Fact]
    public void Scores_are_float32_as_torch_Tensor_holds_them()
    {
        _scripted = (200, """{"scores": [0.1, -2.5]}""");
        Assert.Equal([(double)0.1f, -2.5], Score(("q", "a"), ("q", "b")));
    }

    [Theory]
    [InlineData(500, "overloaded", "answered 500 Internal Server Error: overloaded")]
    [InlineData(200, "not json", "replied with something other than JSON")]
    [InlineData(200, """{"rewards": [1, 2]}""", "'s reply has no \"scores\" array")]
    [InlineData(200, """{"scores": [1]}""", "'s reply field scores holds 1 numbers for 2 messages")]
    [InlineData(200, """{"scores": [1, "high"]}""", "'s reply field scores[1] is \"high\", not a finite float32 number")]
    [InlineData(200, """{"scores": [1e39, 0]}""", "'s reply field scores[0] is 1e39, not a finite float32 number")]
    public void A_failed_or_malformed_reply_stops_naming_the_url_and_the_field(int status, string reply, string expected)
    {
        _scripted = (status, reply);
        var error = Assert.Throws<InvalidDataException>(() => Score(("q", "a"), ("q", "b")));
        Assert.StartsWith($"reward_model: {_url}", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_server_that_is_not_there_stops_naming_the_url()
    {
        // A port bound but not listening: held for the test, so no other server can take it, and connections are refused.
        using var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)bound.LocalEndPoint!).Port;
        var url = new Uri($"http://127.0.0.1:{port}/reward");
        using var rewards = new ApiRewardModel(url, Qwen, TimeSpan.FromSeconds(30));
        var error = Assert.Throws<InvalidDataException>(() => rewards.Score([Qwen.Encode("q")], [Qwen.Encode("a")], CancellationToken.None));
        Assert.StartsWith($"reward_model: {url} could not be asked for scores: ", error.Message);
    }
}
