using System.Text;
using System.Threading.Channels;
using SharpTune.Chat;
using SharpTune.Inference;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Api;

/// <summary>
/// How a completion ended, in OpenAI's words, with its token counts; <paramref name="TimedOut"/> when the time limit
/// ended it (finish reason "length").
/// </summary>
public sealed record GenerationOutcome(string Text, string FinishReason, int PromptTokens, int CompletionTokens, bool TimedOut = false);

/// <summary>
/// One request's generation, run by the <see cref="GenerationQueue"/>: text pieces go out through <see cref="Pieces"/>
/// as soon as they are final (stop strings cut, incomplete UTF-8 held back), the whole result through
/// <see cref="Outcome"/>. Cancelling <paramref name="cancellation"/> (client gone, server stopping) ends it at the next token;
/// so does <paramref name="timeLimit"/>, counted from when it starts to run, but as a completion cut short.
/// <paramref name="constraint"/>, when given, rules which tokens may come (a JSON reply, a forced call).
/// <paramref name="replyOf"/>, for a chat completion, is the template whose <see cref="ChatTemplate.ReplyContent"/> the
/// text is (GLM's metadata line dropped, as chat shows it); null for a plain completion, whose text is as generated.
/// </summary>
public sealed class GenerationJob(string id, ServedModel model, int[] prompt, GenerationOptions options, IReadOnlyList<string> stopStrings,
    TimeSpan timeLimit, CancellationToken cancellation, ITokenConstraint? constraint = null, ChatTemplate? replyOf = null)
{
    /// <summary>The response id the client sees (chatcmpl-…, cmpl-…).</summary>
    public string Id => id;
    public string ModelId => model.Id;
    public int PromptTokens => prompt.Length;
    public int MaxTokens => options.MaxNewTokens;
    private long _startedUnixMs;

    /// <summary>When the worker started it; null while it waits. Read by /health on another thread, hence one atomic long.</summary>
    public DateTimeOffset? Started => Interlocked.Read(ref _startedUnixMs) is long ms and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    private readonly Channel<string> _pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<GenerationOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ChannelReader<string> Pieces => _pieces.Reader;
    /// <summary>The result; cancelled when the job was cancelled before it finished.</summary>
    public Task<GenerationOutcome> Outcome => _outcome.Task;

    /// <summary>Runs the generation on the calling thread (the queue's worker).</summary>
    internal void Run()
    {
        try
        {
            if (cancellation.IsCancellationRequested)
            {
                _outcome.TrySetCanceled(cancellation);
                return;
            }
            Interlocked.Exchange(ref _startedUnixMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            var decoder = new StreamingDecoder(model.Tokenizer, model.SkipSpecialTokens);
            // A chat reply as chat shows it (GLM's metadata line dropped), then the request's stop strings.
            var reply = new ReplyStream(replyOf);
            var filter = new StopStringFilter(stopStrings);
            var text = new StringBuilder();
            void Emit(string piece)
            {
                if (piece.Length == 0) return;
                text.Append(piece);
                _pieces.Writer.TryWrite(piece);
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            stop.CancelAfter(timeLimit);
            var result = model.Generator.Generate(prompt, options, id =>
            {
                Emit(filter.Push(reply.Push(decoder.Push(id))));
                if (filter.Stopped) stop.Cancel();
            }, stop.Token, constraint);
            if (result.FinishReason == FinishReason.Cancelled && !filter.Stopped && cancellation.IsCancellationRequested)
            {
                _outcome.TrySetCanceled(cancellation);
                return;
            }
            // Cancelled by neither the client nor the server: the time limit. OpenAI clients know "length" as a reply
            // cut short and keep its text, where an error would lose it.
            bool timedOut = result.FinishReason == FinishReason.Cancelled && !filter.Stopped;
            Emit(filter.Push(reply.Push(decoder.Flush())));
            Emit(filter.Push(reply.Finish()));
            Emit(filter.Flush());
            string finish = filter.Stopped || result.FinishReason == FinishReason.Stop ? "stop" : "length";
            _outcome.TrySetResult(new GenerationOutcome(text.ToString(), finish, prompt.Length, result.NewIds.Length, timedOut));
        }
        catch (Exception e)
        {
            _outcome.TrySetException(e);
        }
        finally
        {
            _pieces.Writer.TryComplete();
        }
    }
}
