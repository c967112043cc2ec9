using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Api;
using SharpTune.Quantization;

namespace SharpTune.Board.Chat;

/// <summary>What the chat tab loads: a model folder, its adapters in order, the template and the quantization.</summary>
public sealed record ChatModelRequest(string ModelDir, IReadOnlyList<string> Adapters, string Template, QuantizationOptions? Quantization);

public enum ChatModelState { Empty, Loading, Loaded, Failed }

/// <summary>What the chat tab shows about its model: <paramref name="Thinking"/> when the template has Qwen3's thinking toggle.</summary>
public sealed record ChatModelStatus(ChatModelState State, ChatModelRequest? Request, string? Template, bool Thinking, double Seconds, string? Error);

/// <summary>A reply under way: its job streams the text; <paramref name="WithTools"/> when tools were offered, so the calls are parsed at the end.</summary>
public sealed record ChatReply(GenerationJob Job, bool WithTools);

/// <summary>
/// The one chat model the board holds in its own process. It loads in the background (a model takes seconds to
/// minutes), so the server keeps answering and the page polls <see cref="Status"/>. Replies reuse the API server's
/// parts: <see cref="ServedModel"/> (loaded as <c>chat</c> and <c>api</c> load it), <see cref="ChatRequest"/>'s checks,
/// and a <see cref="GenerationQueue"/> worker running <see cref="GenerationJob"/>s one at a time. Unloading cancels the
/// replies, waits for the worker to leave the model and only then frees it, so no generation reads unmapped weights.
/// </summary>
public sealed class ChatModelHost : IDisposable
{
    /// <summary>Replies that may wait behind the running one; more are refused (the page sends one at a time).</summary>
    public const int QueueCapacity = 4;

    private readonly object _gate = new();
    private Loaded? _loaded;
    private ChatModelRequest? _request;
    private ChatModelState _state = ChatModelState.Empty;
    private string? _error;
    private DateTime _since = DateTime.UtcNow;

    /// <summary>A loaded model with its worker; cancelling <see cref="Unloading"/> ends every reply it still runs.</summary>
    private sealed record Loaded(ServedModel Model, GenerationQueue Queue, CancellationTokenSource Unloading);

    public ChatModelStatus Status
    {
        get
        {
            lock (_gate)
                return new ChatModelStatus(_state, _request, _loaded?.Model.Template.Name, _loaded?.Model.Template.Thinking ?? false,
                    (DateTime.UtcNow - _since).TotalSeconds, _error);
        }
    }

    /// <summary>Starts loading in the background; the load's failure shows in <see cref="Status"/>.</summary>
    /// <exception cref="BoardException">A model is loaded or loading: one at a time, unload it first.</exception>
    public void Load(ChatModelRequest request)
    {
        lock (_gate)
        {
            if (_state is ChatModelState.Loading or ChatModelState.Loaded)
                throw new BoardException(409, $"a chat model is already {(_state == ChatModelState.Loading ? "loading" : "loaded")} ({request.ModelDir}); unload it first: the board holds one chat model at a time");
            (_state, _request, _error, _since) = (ChatModelState.Loading, request, null, DateTime.UtcNow);
        }
        Task.Run(() =>
        {
            try
            {
                string id = Path.GetFileName(Path.TrimEndingDirectorySeparator(request.Adapters.Count > 0 ? request.Adapters[^1] : request.ModelDir));
                var model = ServedModel.Load(id, request.ModelDir, request.Adapters, request.Template, request.Quantization);
                lock (_gate) (_loaded, _state, _since) = (new Loaded(model, new GenerationQueue(QueueCapacity), new CancellationTokenSource()), ChatModelState.Loaded, DateTime.UtcNow);
            }
            catch (Exception e)
            {
                lock (_gate) (_state, _error, _since) = (ChatModelState.Failed, Workflows.Workflow.MessageOf(e), DateTime.UtcNow);
            }
        });
    }

    /// <summary>Cancels the replies under way, waits for the worker to stop, frees the model. A failed load is forgotten.</summary>
    /// <exception cref="BoardException">The model is still loading (a load cannot be interrupted).</exception>
    public void Unload()
    {
        Loaded? loaded;
        lock (_gate)
        {
            if (_state == ChatModelState.Loading) throw new BoardException(409, "the chat model is still loading; unload it once it has loaded");
            (loaded, _loaded, _state, _request, _error, _since) = (_loaded, null, ChatModelState.Empty, null, null, DateTime.UtcNow);
        }
        if (loaded is null) return;
        // Not disposed: a reply that took the model just before may still link its token to this source (it has no
        // timer, so there is nothing to free).
        loaded.Unloading.Cancel();
        loaded.Queue.Dispose();
        loaded.Model.Dispose();
    }

    /// <summary>
    /// Starts a reply to a chat body: OpenAI's chat completion fields (messages, tools, temperature, top_p, max_tokens,
    /// seed, stop; checked by <see cref="ChatRequest.Read"/>, no <c>model</c> needed) plus the board's
    /// <c>enable_thinking</c> (Qwen3 templates). The reply ends when <paramref name="aborted"/> fires or the model unloads.
    /// </summary>
    /// <exception cref="ApiException">The body is not a valid chat request (<see cref="ChatRequest.Read"/>'s checks).</exception>
    /// <exception cref="BoardException">No model is loaded, too many replies wait, or the conversation cannot be rendered.</exception>
    public ChatReply Reply(JsonObject fields, CancellationToken aborted)
    {
        Loaded loaded;
        lock (_gate) loaded = _loaded ?? throw new BoardException(409, "no chat model is loaded: load one first");
        var model = loaded.Model;
                bool? enableThinking = null;
        if (fields.Remove("enable_thinking", out var thinking) && thinking is not null)
            enableThinking = thinking.GetValueKind() switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw BoardException.BadRequest("field 'enable_thinking' must be true or false"),
            };
        if (fields.ContainsKey("model")) throw BoardException.BadRequest("field 'model' is not taken here: the reply comes from the loaded chat model");
        fields["model"] = model.Id;
        var request = ChatRequest.Read(JsonSerializer.SerializeToElement(fields));
        if (request.ToolsJson is not null && !model.Template.SupportsTools)
            throw BoardException.BadRequest($"the '{model.Template.Name}' template has no tool format, so tools cannot be passed to this model");
        int[] prompt;
        try
        {
            prompt = model.EncodeChat(request.Messages, request.ToolsJson, enableThinking);
        }
        catch (ArgumentException e)
        {
            throw BoardException.BadRequest($"the conversation cannot be rendered with the '{model.Template.Name}' template: {e.Message}");
        }
        var options = request.Sampling.Options(model, prompt.Length, maxTokensLimit: null);
        var cancellation = CancellationTokenSource.CreateLinkedTokenSource(aborted, loaded.Unloading.Token);
        var job = new GenerationJob("board-chat", model, prompt, options, request.Sampling.Stop, Timeout.InfiniteTimeSpan, cancellation.Token,
            ReplyConstraints.For(request, model));
        if (!loaded.Queue.TryEnqueue(job))
        {
            cancellation.Dispose();
            throw loaded.Unloading.IsCancellationRequested
                ? new BoardException(409, "the chat model was unloaded")
                : new BoardException(429, $"{QueueCapacity} replies are already waiting; wait for them or stop them");
        }
        // The worker may hold the token until the job ends; dispose only then.
        _ = job.Outcome.ContinueWith(_ => cancellation.Dispose(), TaskScheduler.Default);
        return new ChatReply(job, request.ToolsJson is not null);
    }

    public void Dispose()
    {
        // A load still under way finishes on its own thread and is dropped with the process.
        lock (_gate) if (_state == ChatModelState.Loading) return;
        Unload();
    }
}
