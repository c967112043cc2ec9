using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SharpTune.Api;

/// <summary>
/// An OpenAI-compatible HTTP server on Kestrel: <c>GET /v1/models</c>, <c>POST /v1/chat/completions</c>,
/// <c>POST /v1/completions</c> (both streamed as server-sent events on request) and <c>GET /health</c>. Errors are
/// OpenAI's error object. Generations run one at a time through a <see cref="GenerationQueue"/>; a client that goes
/// away cancels its own generation, and stopping the server cancels every in-flight one.
/// </summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ApiServerOptions _options;
    private readonly Dictionary<string, ServedModel> _models;
    private readonly GenerationQueue _queue;
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[]? _keyHash;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The address the server listens on (with the real port when it was started on port 0).</summary>
    public Uri Address { get; private set; } = null!;

    private ApiServer(ApiServerOptions options, IReadOnlyList<ServedModel> models)
    {
        _options = options;
        _models = new Dictionary<string, ServedModel>(StringComparer.Ordinal);
        foreach (var model in models)
            if (!_models.TryAdd(model.Id, model)) throw new ArgumentException($"two served models have the id '{model.Id}'");
        if (_models.Count == 0) throw new ArgumentException("no model to serve");
        _keyHash = options.ApiKey is { Length: > 0 } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;
        _queue = new GenerationQueue(options.MaxQueuedRequests);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        builder.WebHost.UseUrls(Url(options.Host, options.Port));
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(10));
        _app = builder.Build();
        _app.Lifetime.ApplicationStopping.Register(_stopping.Cancel);
        _app.UseStatusCodePages(WriteStatusCodeError);
        _app.Use(GuardAsync);
        _app.MapGet("/health", () => Results.Json(Health(), Json));
        _app.MapGet("/v1/models", () => Results.Json(ModelList(), Json));
        _app.MapPost("/v1/chat/completions", ChatCompletionsAsync);
        _app.MapPost("/v1/completions", CompletionsAsync);
    }

    /// <summary>Starts listening; the models stay the caller's to dispose after the server is disposed.</summary>
    public static async Task<ApiServer> StartAsync(ApiServerOptions options, IReadOnlyList<ServedModel> models)
    {
        var server = new ApiServer(options, models);
        try
        {
            await server._app.StartAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        server.Address = new Uri(server._app.Urls.First());
        return server;
    }

    /// <summary>True when <paramref name="host"/> is a loopback name or address (only this machine can connect).</summary>
    public static bool IsLoopback(string host) =>
        host == "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    private static string Url(string host, int port) =>
        $"http://{(IPAddress.TryParse(host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host)}:{port}";

    /// <summary>Completes when the host stops (Ctrl+C / SIGTERM, or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Stops accepting connections, cancels in-flight generations, lets their responses end, then stops the worker.</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _queue.Dispose();
        _stopping.Dispose();
    }

    private JsonObject Health()
    {
        var (completed, cancelled, failed) = _queue.Counts;
        return new JsonObject
        {
            ["status"] = "ok",
            ["generations"] = new JsonObject { ["completed"] = completed, ["cancelled"] = cancelled, ["failed"] = failed },
        };
    }

    private JsonObject ModelList() => new()
    {
        ["object"] = "list",
        ["data"] = new JsonArray(_models.Keys.Select(id => (JsonNode)new JsonObject
        {
            ["id"] = id,
            ["object"] = "model",
            ["created"] = _created,
            ["owned_by"] = "sharptune",
        }).ToArray()),
    };

    // Authentication and error shaping for every request: user mistakes become 4xx in OpenAI's shape, anything
    // else a 500 whose details go to the server's stderr only.
    private async Task GuardAsync(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            if (_keyHash is not null && ctx.Request.Path.StartsWithSegments("/v1") && !Authorized(ctx.Request))
                throw new ApiException(401, "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'", code: "invalid_api_key");
            await next(ctx);
        }
        catch (ApiException e) when (!ctx.Response.HasStarted)
        {
            await WriteErrorAsync(ctx, e);
        }
        catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
        {
            string message = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"the request body is larger than the server's limit of {_options.MaxRequestBodyBytes} bytes"
                : e.Message;
            await WriteErrorAsync(ctx, new ApiException(e.StatusCode, message));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its generation was cancelled with it.
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"[sharptune] error serving {ctx.Request.Method} {ctx.Request.Path}: {e}");
            if (!ctx.Response.HasStarted)
                await WriteErrorAsync(ctx, new ApiException(500, "the server failed to process the request", type: "server_error"));
        }
    }

    // Both sides hashed to a fixed length first, so the comparison takes the same time whatever the key's length.
    private bool Authorized(HttpRequest request)
    {
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal)) return false;
        byte[] given = SHA256.HashData(Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(given, _keyHash);
    }

    private static Task WriteStatusCodeError(StatusCodeContext context)
    {
        var ctx = context.HttpContext;
        var error = ctx.Response.StatusCode switch
        {
            404 => new ApiException(404, $"no such endpoint: {ctx.Request.Method} {ctx.Request.Path}", code: "unknown_url"),
            405 => new ApiException(405, $"method {ctx.Request.Method} is not allowed for {ctx.Request.Path}", code: "method_not_allowed"),
            int status => new ApiException(status, $"HTTP {status}"),
        };
        return WriteErrorAsync(ctx, error);
    }

    private static async Task WriteErrorAsync(HttpContext ctx, ApiException e)
    {
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(e.ToJson().ToJsonString(Json));
    }

    private static async Task<JsonElement> ReadBodyAsync(HttpContext ctx)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted);
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ApiException.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
    }

    private ServedModel Find(string id) =>
        _models.TryGetValue(id, out var model)
            ? model
            : throw new ApiException(404, $"The model '{id}' does not exist; GET /v1/models lists the served ids", "model", "model_not_found");

    /// <summary>
    /// Queues a generation that ends when the client goes away, when the server stops, or when the handler leaves
    /// for any other reason (a failed write to a closed connection included): <paramref name="serve"/> runs with it.
    /// </summary>
    private async Task ServeJobAsync(HttpContext ctx, ServedModel model, int[] prompt, SamplingRequest sampling, Inference.GenerationOptions options,
        Func<GenerationJob, Task> serve)
    {
        var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, _stopping.Token);
        var job = new GenerationJob(model, prompt, options, sampling.Stop, cancellation.Token);
        if (!_queue.TryEnqueue(job))
        {
            cancellation.Dispose();
            throw new ApiException(429, $"{_options.MaxQueuedRequests} requests are already waiting; retry later", code: "rate_limit_exceeded", type: "rate_limit_error");
        }
        // The worker may still hold the token until the job completes; dispose only then.
        _ = job.Outcome.ContinueWith(_ => cancellation.Dispose(), TaskScheduler.Default);
        try
        {
            await serve(job);
        }
        finally
        {
            if (!job.Outcome.IsCompleted) cancellation.Cancel();
        }
    }

    /// <summary>The job's outcome, or null when the server is stopping (the caller answers accordingly).</summary>
    private async Task<GenerationOutcome?> OutcomeAsync(HttpContext ctx, GenerationJob job)
    {
        try
        {
            return await job.Outcome;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            return null;
        }
    }

    // Text as it is (no \uXXXX for non-ASCII or quotes): the responses are JSON bodies, never embedded in HTML.
    internal static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly ApiException ShuttingDown = new(503, "the server is shutting down", code: "server_shutting_down", type: "server_error");

    private static JsonObject Usage(GenerationOutcome o) => new()
    {
        ["prompt_tokens"] = o.PromptTokens,
        ["completion_tokens"] = o.CompletionTokens,
        ["total_tokens"] = o.PromptTokens + o.CompletionTokens,
    };

    private static string NewId(string prefix) => prefix + RandomNumberGenerator.GetHexString(24, lowercase: true);

    private async Task ChatCompletionsAsync(HttpContext ctx)
    {
        var request = ChatRequest.Read(await ReadBodyAsync(ctx));
        var model = Find(request.Model);
        if (request.ToolsJson is not null && !model.Template.SupportsTools)
            throw ApiException.BadRequest($"the '{model.Template.Name}' template has no tool format, so tools cannot be passed to this model (a config's tool_format sets one)", "tools");
        int[] prompt;
        try
        {
            prompt = model.EncodeChat(request.Messages, request.ToolsJson);
        }
        catch (ArgumentException e)
        {
            throw ApiException.BadRequest($"the conversation cannot be rendered with the '{model.Template.Name}' template: {e.Message}", "messages");
        }
        var options = request.Sampling.Options(model, prompt.Length);
        var stream = new ChunkStream(ctx, NewId("chatcmpl-"), model.Id, request.Sampling.IncludeUsage);
        await ServeJobAsync(ctx, model, prompt, request.Sampling, options, async job =>
        {
            if (!request.Sampling.Stream)
            {
                var outcome = await OutcomeAsync(ctx, job) ?? throw ShuttingDown;
                await ctx.Response.WriteAsJsonAsync(ChatResponse(stream, outcome, request.ToolsJson is not null), Json);
                return;
            }

            await stream.StartAsync();
            await stream.SendAsync(stream.Chunk("chat.completion.chunk", ChatChoice(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null)));
            await foreach (string piece in job.Pieces.ReadAllAsync(ctx.RequestAborted))
                await stream.SendAsync(stream.Chunk("chat.completion.chunk", ChatChoice(new JsonObject { ["content"] = piece }, null)));
            await stream.FinishAsync(await OutcomeAsync(ctx, job), "chat.completion.chunk", finish => ChatChoice(new JsonObject(), finish));
        });
    }

    private static JsonObject ChatChoice(JsonObject delta, string? finishReason) => new()
    {
        ["index"] = 0,
        ["delta"] = delta,
        ["logprobs"] = null,
        ["finish_reason"] = finishReason,
    };

    private static JsonObject ChatResponse(ChunkStream ids, GenerationOutcome outcome, bool parseToolCalls)
    {
        var message = new JsonObject { ["role"] = "assistant", ["content"] = outcome.Text };
        string finish = outcome.FinishReason;
        if (parseToolCalls && ToolCallParser.Parse(outcome.Text) is { Calls.Count: > 0 } parsed)
        {
            message["content"] = parsed.Content;
            message["tool_calls"] = new JsonArray(parsed.Calls.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.Id,
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.ArgumentsJson },
            }).ToArray());
            finish = "tool_calls";
        }
        var response = ids.Header("chat.completion");
        response["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = message,
            ["logprobs"] = null,
            ["finish_reason"] = finish,
        });
        response["usage"] = Usage(outcome);
        return response;
    }

    private async Task CompletionsAsync(HttpContext ctx)
    {
        var body = await ReadBodyAsync(ctx);
        var r = RequestReader.ForBody(body);
        var model = Find(r.RequiredString("model"));
        string text = r.Get("prompt") switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString()!,
            { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() == 1 && a[0].ValueKind == JsonValueKind.String => a[0].GetString()!,
            null => throw ApiException.BadRequest("prompt is required", "prompt"),
            _ => throw ApiException.BadRequest("prompt must be a string (or an array holding one string)", "prompt"),
        };
        if (r.Bool("echo") == true) throw r.Invalid("echo", "is not supported");
        if (r.String("suffix") is not null) throw r.Invalid("suffix", "is not supported");
        if (r.Integer("best_of", long.MinValue, long.MaxValue) is long bestOf && bestOf != 1) throw r.Invalid("best_of", "must be 1");
        var sampling = SamplingRequest.Read(r, "max_tokens");
        int[] prompt = model.Tokenizer.Encode(text);
        if (prompt.Length == 0) throw ApiException.BadRequest("prompt is empty", "prompt");
        // OpenAI's completions endpoint generates 16 tokens when max_tokens is not given.
        var options = sampling.Options(model, prompt.Length, defaultMaxTokens: 16);
        var stream = new ChunkStream(ctx, NewId("cmpl-"), model.Id, sampling.IncludeUsage);
        await ServeJobAsync(ctx, model, prompt, sampling, options, async job =>
        {
            if (!sampling.Stream)
            {
                var outcome = await OutcomeAsync(ctx, job) ?? throw ShuttingDown;
                var response = stream.Header("text_completion");
                response["choices"] = new JsonArray(CompletionChoice(outcome.Text, outcome.FinishReason));
                response["usage"] = Usage(outcome);
                await ctx.Response.WriteAsJsonAsync(response, Json);
                return;
            }

            await stream.StartAsync();
            await foreach (string piece in job.Pieces.ReadAllAsync(ctx.RequestAborted))
                await stream.SendAsync(stream.Chunk("text_completion", CompletionChoice(piece, null)));
            await stream.FinishAsync(await OutcomeAsync(ctx, job), "text_completion", finish => CompletionChoice("", finish));
        });
    }

    private static JsonObject CompletionChoice(string text, string? finishReason) => new()
    {
        ["text"] = text,
        ["index"] = 0,
        ["logprobs"] = null,
        ["finish_reason"] = finishReason,
    };

    /// <summary>One response's id, model and creation time, and its server-sent events when it streams.</summary>
    private sealed class ChunkStream(HttpContext ctx, string id, string model, bool includeUsage)
    {
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        public JsonObject Header(string objectType) => new()
        {
            ["id"] = id,
            ["object"] = objectType,
            ["created"] = _created,
            ["model"] = model,
        };

        /// <summary>A chunk with one choice; with include_usage every chunk carries "usage": null, as OpenAI sends them.</summary>
        public JsonObject Chunk(string objectType, JsonObject choice)
        {
            var chunk = Header(objectType);
            chunk["choices"] = new JsonArray(choice);
            if (includeUsage) chunk["usage"] = null;
            return chunk;
        }

        public async Task StartAsync()
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            await ctx.Response.StartAsync(ctx.RequestAborted);
        }

        public async Task SendAsync(JsonObject data)
        {
            await ctx.Response.WriteAsync("data: " + data.ToJsonString(Json) + "\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        }

        /// <summary>
        /// The closing events: the finish_reason chunk, the usage chunk when asked for, then [DONE]; when the server
        /// stops mid-stream, an error event instead, so the client knows the reply is incomplete.
        /// </summary>
        public async Task FinishAsync(GenerationOutcome? outcome, string objectType, Func<string, JsonObject> finalChoice)
        {
            if (outcome is null)
            {
                await SendAsync(ShuttingDown.ToJson());
                return;
            }
            await SendAsync(Chunk(objectType, finalChoice(outcome.FinishReason)));
            if (includeUsage)
            {
                var usage = Header(objectType);
                usage["choices"] = new JsonArray();
                usage["usage"] = Usage(outcome);
                await SendAsync(usage);
            }
            await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        }
    }
}
