using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
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
/// <c>POST /v1/completions</c> (both streamed as server-sent events on request) and <c>GET</c>/<c>HEAD /health</c>.
/// Errors are OpenAI's error object. Generations run one at a time through a <see cref="GenerationQueue"/>; a client
/// that goes away cancels its own generation, and stopping the server cancels every in-flight one. Every request
/// passes <see cref="GuardAsync"/> first: the Host and Origin rules that keep web pages out, then the key.
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
    private readonly ServerBinding _binding;
    private readonly HashSet<string> _corsOrigins;

    /// <summary>The first address the server listens on (with the real port when it was started on port 0).</summary>
    public Uri Address => Addresses[0];

    /// <summary>Every address the server listens on, as bound.</summary>
    public IReadOnlyList<Uri> Addresses { get; private set; } = [];

    /// <summary>True when every bound address is a loopback one (only this machine can connect).</summary>
    public bool IsLoopbackOnly => _binding.IsLoopbackOnly;

    private ApiServer(ApiServerOptions options, IReadOnlyList<ServedModel> models)
    {
        options.Validate();
        _options = options;
        _models = new Dictionary<string, ServedModel>(StringComparer.Ordinal);
        foreach (var model in models)
            if (!_models.TryAdd(model.Id, model)) throw new ArgumentException($"two served models have the id '{model.Id}'");
        if (_models.Count == 0) throw new ArgumentException("no model to serve");
        _keyHash = options.ApiKey is { Length: > 0 } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;
        _binding = new ServerBinding(options.Host, options.Port, options.AllowedHosts);
        _corsOrigins = new HashSet<string>(options.CorsOrigins.Select(o => o.TrimEnd('/')), StringComparer.OrdinalIgnoreCase);
        _queue = new GenerationQueue(options.MaxQueuedRequests);

        var builder = _binding.CreateBuilder(options.MaxRequestBodyBytes);
        _app = builder.Build();
        _app.Lifetime.ApplicationStopping.Register(_stopping.Cancel);
        _app.UseStatusCodePages(WriteStatusCodeError);
        _app.Use(GuardAsync);
        _app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], () => Results.Json(Health(), Json));
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
        server.Addresses = server._app.Urls.Select(url => new Uri(url)).ToList();
        return server;
    }

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
        var (completed, timedOut, cancelled, failed) = _queue.Counts;
        var running = _queue.Running;
        return new JsonObject
        {
            ["status"] = "ok",
            ["generations"] = new JsonObject { ["completed"] = completed, ["timed_out"] = timedOut, ["cancelled"] = cancelled, ["failed"] = failed },
            ["queue"] = new JsonObject
            {
                ["waiting"] = _queue.Waiting,
                ["capacity"] = _options.MaxQueuedRequests,
                ["running"] = running is null ? null : new JsonObject
                {
                    ["id"] = running.Id,
                    ["model"] = running.ModelId,
                    ["prompt_tokens"] = running.PromptTokens,
                    ["max_tokens"] = running.MaxTokens,
                    ["started"] = running.Started?.ToUnixTimeSeconds(),
                },
            },
            ["limits"] = new JsonObject
            {
                ["max_tokens"] = _options.MaxTokensLimit,
                ["request_timeout_s"] = _options.RequestTimeout.TotalSeconds,
                ["max_body_bytes"] = _options.MaxRequestBodyBytes,
            },
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

    // The Host and Origin rules, authentication and error shaping for every request: user mistakes become 4xx in
    // OpenAI's shape, anything else a 500 whose details go to the server's stderr only.
    private async Task GuardAsync(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            if (!_binding.AnswersHost(ctx.Request.Host.Host))
                throw new ApiException(403,
                    $"this server does not answer for the host name {ApiException.Quote(ctx.Request.Host.Host)}: start it with --allowed-host NAME to allow one",
                    code: "host_not_allowed");
            if (ctx.Request.Headers.Origin is { Count: > 0 } origin && AnswerCrossOrigin(ctx, origin.ToString())) return;
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

    /// <summary>
    /// A request from a web page (it carries Origin) is refused unless its origin is allowed; an allowed one gets the
    /// CORS headers, and its preflight (OPTIONS with Access-Control-Request-Method) is answered here, before the key
    /// check, as browsers send preflights without credentials. True when the response is complete.
    /// </summary>
    private bool AnswerCrossOrigin(HttpContext ctx, string origin)
    {
        if (!_corsOrigins.Contains("*") && !_corsOrigins.Contains(origin))
            throw new ApiException(403, $"requests from web pages at {ApiException.Quote(origin)} are not allowed: start the server with --cors-origin ORIGIN to allow one",
                code: "origin_not_allowed");
        var headers = ctx.Response.Headers;
        headers.AccessControlAllowOrigin = origin;
        headers.Vary = "Origin";
        if (!HttpMethods.IsOptions(ctx.Request.Method) || !ctx.Request.Headers.ContainsKey("Access-Control-Request-Method")) return false;
        headers.AccessControlAllowMethods = "GET, HEAD, POST";
        // The origin is trusted, so whatever headers its client sends (openai's x-stainless-* among them) may come.
        if (ctx.Request.Headers.AccessControlRequestHeaders is { Count: > 0 } asked) headers.AccessControlAllowHeaders = asked;
        headers.AccessControlMaxAge = "600";
        ctx.Response.StatusCode = StatusCodes.Status204NoContent;
        return true;
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
            404 => new ApiException(404, $"no such endpoint: {ApiException.Shorten(ctx.Request.Method)} {ApiException.Quote(ctx.Request.Path.ToString())}", code: "unknown_url"),
            405 => new ApiException(405, $"method {ApiException.Shorten(ctx.Request.Method)} is not allowed for {ApiException.Quote(ctx.Request.Path.ToString())}", code: "method_not_allowed"),
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
        if (!ServerBinding.IsJson(ctx.Request.ContentType))
            throw new ApiException(415,
                $"the request body must be sent with Content-Type: application/json, got {(string.IsNullOrEmpty(ctx.Request.ContentType) ? "none" : ApiException.Quote(ctx.Request.ContentType))}",
                code: "unsupported_media_type");
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

    /// <summary>
    /// The model a request names. A server with one model id answers any name with it, as LLaMA-Factory's server
    /// does (its own examples send model "test"); with several, an unknown one is a 404.
    /// </summary>
    private ServedModel Find(string id) =>
        _models.TryGetValue(id, out var model) ? model
        : _models.Count == 1 ? _models.Values.First()
        : throw new ApiException(404, $"The model {ApiException.Quote(id)} does not exist; GET /v1/models lists the served ids", "model", "model_not_found");

    /// <summary>
    /// Queues a generation that ends when the client goes away, when the server stops, or when the handler leaves
    /// for any other reason (a failed write to a closed connection included): <paramref name="serve"/> runs with it.
    /// </summary>
    private async Task ServeJobAsync(HttpContext ctx, string id, ServedModel model, int[] prompt, SamplingRequest sampling, Inference.GenerationOptions options,
        Func<GenerationJob, Task> serve, Inference.ITokenConstraint? constraint = null, Templates.ChatTemplate? replyOf = null)
    {
        var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, _stopping.Token);
        var job = new GenerationJob(id, model, prompt, options, sampling.Stop, _options.RequestTimeout, cancellation.Token, constraint, replyOf);
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
        var options = request.Sampling.Options(model, prompt.Length, _options.MaxTokensLimit);
        var constraint = ReplyConstraints.For(request, model);
        var stream = new ChunkStream(ctx, NewId("chatcmpl-"), model.Id, request.Sampling.IncludeUsage);
        bool withTools = request.ToolsJson is not null;
        await ServeJobAsync(ctx, stream.Id, model, prompt, request.Sampling, options, async job =>
        {
            if (!request.Sampling.Stream)
            {
                var outcome = await OutcomeAsync(ctx, job) ?? throw ShuttingDown;
                await ctx.Response.WriteAsJsonAsync(ChatResponse(stream, outcome, withTools), Json);
                return;
            }

            await stream.StartAsync();
            await stream.SendAsync(stream.Chunk("chat.completion.chunk", ChatChoice(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null)));
            // With tools, text that may begin a call is held back; once a call begins, the rest waits for the whole
            // reply, whose calls are then sent as OpenAI's tool_calls deltas (or, if they do not parse, as text).
            var callStart = withTools ? new StopStringFilter([ToolCallParser.CallOpening]) : null;
            int sent = 0;
            async Task SendContentAsync(string content)
            {
                if (content.Length == 0) return;
                sent += content.Length;
                await stream.SendAsync(stream.Chunk("chat.completion.chunk", ChatChoice(new JsonObject { ["content"] = content }, null)));
            }
            await foreach (string piece in job.Pieces.ReadAllAsync(ctx.RequestAborted))
                await SendContentAsync(callStart is null ? piece : callStart.Push(piece));
            var final = await OutcomeAsync(ctx, job);
            if (final is not null && withTools)
            {
                if (ToolCallParser.Parse(final.Text) is { Calls.Count: > 0 } parsed)
                {
                    await SendToolCallDeltasAsync(stream, parsed.Calls);
                    final = final with { FinishReason = "tool_calls" };
                }
                else await SendContentAsync(final.Text[sent..]);
            }
            await stream.FinishAsync(final, "chat.completion.chunk", finish => ChatChoice(new JsonObject(), finish));
        }, constraint, replyOf: model.Template);
    }

    /// <summary>Each call as OpenAI streams it: a delta with its index, id, type and name (arguments ""), then one with its arguments.</summary>
    private static async Task SendToolCallDeltasAsync(ChunkStream stream, IReadOnlyList<ParsedToolCall> calls)
    {
        for (int i = 0; i < calls.Count; i++)
        {
            var head = new JsonObject
            {
                ["index"] = i,
                ["id"] = calls[i].Id,
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = calls[i].Name, ["arguments"] = "" },
            };
            var arguments = new JsonObject { ["index"] = i, ["function"] = new JsonObject { ["arguments"] = calls[i].ArgumentsJson } };
            foreach (var delta in new[] { head, arguments })
                await stream.SendAsync(stream.Chunk("chat.completion.chunk", ChatChoice(new JsonObject { ["tool_calls"] = new JsonArray(delta) }, null)));
        }
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

    /// <summary>Every parameter of OpenAI's (legacy) completions request; those not served are refused below unless they ask for nothing.</summary>
    private static readonly IReadOnlySet<string> CompletionParameters =
        new HashSet<string>(SamplingRequest.Parameters, StringComparer.Ordinal) { "model", "prompt", "echo", "suffix", "best_of", "logprobs" };

    private async Task CompletionsAsync(HttpContext ctx)
    {
        var body = await ReadBodyAsync(ctx);
        var r = RequestReader.ForBody(body);
        r.RejectUnknown(CompletionParameters);
        var model = Find(r.RequiredString("model"));
        string text = r.Get("prompt") switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString()!,
            { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() == 1 && a[0].ValueKind == JsonValueKind.String => a[0].GetString()!,
            null => throw ApiException.BadRequest("prompt is required", "prompt"),
            _ => throw ApiException.BadRequest("prompt must be a string (or an array holding one string)", "prompt"),
        };
        if (r.Bool("echo") == true) throw r.Invalid("echo", "is not supported");
        if (r.Get("logprobs") is not null) throw r.Invalid("logprobs", "is not supported");
        if (r.String("suffix") is not null) throw r.Invalid("suffix", "is not supported");
        if (r.Integer("best_of", long.MinValue, long.MaxValue) is long bestOf && bestOf != 1) throw r.Invalid("best_of", "must be 1");
        var sampling = SamplingRequest.Read(r, "max_tokens");
        int[] prompt = model.Tokenizer.Encode(text);
        if (prompt.Length == 0) throw ApiException.BadRequest("prompt is empty", "prompt");
        // OpenAI's completions endpoint generates 16 tokens when max_tokens is not given.
        var options = sampling.Options(model, prompt.Length, _options.MaxTokensLimit, defaultMaxTokens: 16);
        var stream = new ChunkStream(ctx, NewId("cmpl-"), model.Id, sampling.IncludeUsage);
        await ServeJobAsync(ctx, stream.Id, model, prompt, sampling, options, async job =>
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

        public string Id => id;

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
