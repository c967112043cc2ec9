using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tokenization;

namespace SharpTune.Training.Ppo;

/// <summary>
/// Stage ppo's <c>reward_model_type: api</c>, as LLaMA-Factory's PPO trainer scores through get_rewards_from_server:
/// each query and its response are decoded together (special tokens kept) and one POST to the <c>reward_model</c> URL
/// carries them all as <c>{"model": "model", "messages": [TEXT, ...]}</c>; the reply's <c>scores</c> array holds one
/// number per message, in order. LLaMA-Factory sends once and reads the reply without checks; here a failed request or
/// a reply that is not such an array stops with the URL and what is wrong, since a made-up reward would train silently.
/// </summary>
public sealed class ApiRewardModel : IDisposable
{
    private readonly Uri _endpoint;
    private readonly Tokenizer _tokenizer;
    private readonly HttpClient _http;

    /// <param name="timeout">How long one request may take; LLaMA-Factory's requests.post waits without limit.</param>
    public ApiRewardModel(Uri endpoint, Tokenizer tokenizer, TimeSpan timeout)
    {
        if (!endpoint.IsAbsoluteUri || endpoint.Scheme is not ("http" or "https"))
            throw new ArgumentException($"reward_model: '{endpoint}' is not an http(s) URL");
        _endpoint = endpoint;
        _tokenizer = tokenizer;
        _http = new HttpClient { Timeout = timeout };
    }

    /// <summary>The texts sent for <paramref name="queries"/> and their <paramref name="responses"/>: each pair's ids decoded together.</summary>
    public IReadOnlyList<string> Messages(IReadOnlyList<int[]> queries, IReadOnlyList<int[]> responses)
    {
        if (queries.Count != responses.Count)
            throw new ArgumentException($"{queries.Count} queries but {responses.Count} responses");
        return [.. queries.Select((query, i) => _tokenizer.Decode([.. query, .. responses[i]], skipSpecialTokens: false))];
    }

    /// <summary>
    /// One score per query/response pair. The numbers are rounded to float32, as LLaMA-Factory's torch.Tensor(rewards)
    /// holds them.
    /// </summary>
    /// <exception cref="InvalidDataException">The server failed, or its reply is not a <c>scores</c> array of one number per message.</exception>
    public double[] Score(IReadOnlyList<int[]> queries, IReadOnlyList<int[]> responses, CancellationToken cancellation)
    {
        var messages = Messages(queries, responses);
        var body = new JsonObject { ["model"] = "model", ["messages"] = new JsonArray([.. messages.Select(m => (JsonNode?)m)]) };
        string reply;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint)
            {
                Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            using var response = _http.Send(request, cancellation);
            using var reader = new StreamReader(response.Content.ReadAsStream(cancellation), Encoding.UTF8);
            reply = reader.ReadToEnd();
            if (!response.IsSuccessStatusCode)
                throw new InvalidDataException($"reward_model: {_endpoint} answered {(int)response.StatusCode} {response.ReasonPhrase}: {Shorten(reply)}");
        }
        catch (Exception e) when (!cancellation.IsCancellationRequested && e is HttpRequestException or IOException or TaskCanceledException)
        {
            string why = e is TaskCanceledException ? $"no reply within {_http.Timeout.TotalSeconds:0} s" : e.Message;
            throw new InvalidDataException($"reward_model: {_endpoint} could not be asked for scores: {why}", e);
        }
        return ReadScores(reply, messages.Count);
    }

    private double[] ReadScores(string reply, int expected)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(reply);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"reward_model: {_endpoint} replied with something other than JSON ({e.Message}): {Shorten(reply)}");
        }
        if (root is not JsonObject obj || obj["scores"] is not JsonArray scores)
            throw new InvalidDataException($"reward_model: {_endpoint}'s reply has no \"scores\" array: {Shorten(reply)}");
        if (scores.Count != expected)
            throw new InvalidDataException($"reward_model: {_endpoint}'s reply field scores holds {scores.Count} numbers for {expected} messages");
        var values = new double[expected];
        for (int i = 0; i < expected; i++)
        {
            float score = scores[i] is JsonValue value && value.GetValueKind() == JsonValueKind.Number ? (float)value.GetValue<double>() : float.NaN;
            if (!float.IsFinite(score))
                throw new InvalidDataException($"reward_model: {_endpoint}'s reply field scores[{i}] is {scores[i]?.ToJsonString() ?? "null"}, not a finite float32 number");
            values[i] = score;
        }
        return values;
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "...";

    public void Dispose() => _http.Dispose();
}
