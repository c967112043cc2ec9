using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Data.Building;

/// <summary>
/// Where the teacher is and how it is asked: an OpenAI-compatible endpoint (its base URL ends before
/// <c>/chat/completions</c>, e.g. <c>https://api.openai.com/v1</c> or a <c>sharptune api</c> at
/// <c>http://127.0.0.1:8000/v1</c>), the model id, sampling settings sent with every request, and the retry policy.
/// </summary>
public sealed record TeacherSettings(
    Uri BaseUrl,
    string? ApiKey,
    string Model,
    double Temperature = 0.7,
    int MaxTokens = 1024,
    int? Seed = null,
    int MaxRetries = 6,
    TimeSpan? RequestTimeout = null);

/// <summary>A teacher failure that retrying cannot mend: a 4xx other than 429, retries used up, or a reply that is not a chat completion.</summary>
public sealed class TeacherException(string message) : Exception(message);

/// <summary>
/// One chat completion at a time per call (the caller bounds how many run at once): POST
/// <c>BASE/chat/completions</c> with <c>{"model", "messages": [{"role": "user", ...}], "temperature", "max_tokens", "seed"}</c>.
/// 429, 5xx, timeouts and dropped connections are retried up to <see cref="TeacherSettings.MaxRetries"/> times,
/// waiting as Retry-After says (seconds or an HTTP date) or else an exponential backoff (first 1 s, doubling, at most
/// 60 s) with full jitter (a uniform draw up to the backoff), as AWS's backoff guidance recommends so clients that
/// failed together do not retry together. Any other 4xx is an error naming the status and the server's message.
/// </summary>
public sealed class TeacherClient : IDisposable
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(60);

    private readonly TeacherSettings settings;
    private readonly HttpClient http;
    private readonly Uri endpoint;
    private int requests, retries;

    public TeacherClient(TeacherSettings settings)
    {
        this.settings = settings;
        http = new HttpClient { Timeout = settings.RequestTimeout ?? TimeSpan.FromMinutes(10) };
        if (settings.ApiKey is { Length: > 0 } key) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        string baseUrl = settings.BaseUrl.ToString();
        endpoint = new Uri(baseUrl.TrimEnd('/') + "/chat/completions");
    }

    /// <summary>HTTP requests sent, retries included.</summary>
    public int Requests => requests;

    /// <summary>Requests that were repeats of a failed one.</summary>
    public int Retries => retries;

    /// <summary>The request body for <paramref name="prompt"/>: what the teacher is sent, and what the job file's hash covers.</summary>
    public string RequestBody(string prompt)
    {
        var body = new JsonObject
        {
            ["model"] = settings.Model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
            ["temperature"] = settings.Temperature,
            ["max_tokens"] = settings.MaxTokens,
        };
        if (settings.Seed is { } seed) body["seed"] = seed;
        return body.ToJsonString();
    }

    /// <summary>Sends <paramref name="requestBody"/> (from <see cref="RequestBody"/>) until it succeeds or cannot; returns the reply's text (empty when the teacher sent none).</summary>
    public async Task<string> CompleteAsync(string requestBody, CancellationToken cancel)
    {
        var random = new Random();
        for (int attempt = 0; ; attempt++)
        {
            if (attempt > 0) Interlocked.Increment(ref retries);
            Interlocked.Increment(ref requests);
            string failure;
            TimeSpan? retryAfter = null;
            try
            {
                using var content = new StringContent(requestBody, Encoding.UTF8, "application/json");
                using var response = await http.PostAsync(endpoint, content, cancel);
                string body = await response.Content.ReadAsStringAsync(cancel);
                if (response.IsSuccessStatusCode) return ReplyText(body);
                int status = (int)response.StatusCode;
                failure = $"{status} {response.ReasonPhrase}: {ServerMessage(body)}";
                if (status != 429 && status < 500)
                    throw new TeacherException($"the teacher at {endpoint} answered {failure}");
                retryAfter = RetryAfter(response);
            }
            catch (Exception e) when (!cancel.IsCancellationRequested && e is HttpRequestException or IOException or TaskCanceledException)
            {
                // A dropped connection, a reset or a request timeout: the call may be repeated.
                failure = e is TaskCanceledException ? $"no reply within {http.Timeout.TotalSeconds:0} s" : e.Message;
            }
            if (attempt >= settings.MaxRetries)
                throw new TeacherException($"the teacher at {endpoint} failed {attempt + 1} times; last: {failure}");
            var backoff = retryAfter ?? Backoff(attempt, random);
            Console.Error.WriteLine($"[sharptune] teacher: {failure}; retrying in {backoff.TotalSeconds:0.0} s");
            await Task.Delay(backoff, cancel);
        }
    }

    private static TimeSpan Backoff(int attempt, Random random)
    {
        double ceiling = Math.Min(MaxBackoff.TotalSeconds, FirstBackoff.TotalSeconds * Math.Pow(2, attempt));
        return TimeSpan.FromSeconds(random.NextDouble() * ceiling);
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is not { } header) return null;
        if (header.Delta is { } delta) return delta;
        if (header.Date is { } date) return date > DateTimeOffset.UtcNow ? date - DateTimeOffset.UtcNow : TimeSpan.Zero;
        return null;
    }

    private string ReplyText(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var message = document.RootElement.GetProperty("choices")[0].GetProperty("message");
            return message.TryGetProperty("content", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString()! : "";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or IndexOutOfRangeException or InvalidOperationException)
        {
            throw new TeacherException($"the teacher at {endpoint} sent a reply that is not a chat completion (no choices[0].message): {Shorten(body)}");
        }
    }

    /// <summary>OpenAI's error body's <c>error.message</c>, else the body itself (shortened).</summary>
    private static string ServerMessage(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.String) return error.GetString()!;
                if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var message)) return message.ToString();
            }
        }
        catch (JsonException)
        {
        }
        return body.Length == 0 ? "(no message)" : Shorten(body);
    }

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "...";

    public void Dispose() => http.Dispose();
}
