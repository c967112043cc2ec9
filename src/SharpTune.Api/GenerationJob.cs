using System.Text;
using System.Threading.Channels;
using SharpTune.Inference;
using SharpTune.Tokenization;

namespace SharpTune.Api;

/// <summary>How a completion ended, in OpenAI's words, with its token counts.</summary>
public sealed record GenerationOutcome(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// One request's generation, run by the <see cref="GenerationQueue"/>: text pieces go out through <see cref="Pieces"/>
/// as soon as they are final (stop strings cut, incomplete UTF-8 held back), the whole result through
/// <see cref="Outcome"/>. Cancelling <paramref name="cancellation"/> (client gone, server stopping) ends it at the next token.
/// </summary>
public sealed class GenerationJob(ServedModel model, int[] prompt, GenerationOptions options, IReadOnlyList<string> stopStrings, CancellationToken cancellation)
{
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
            var decoder = new StreamingDecoder(model.Tokenizer, model.SkipSpecialTokens);
            var filter = new StopStringFilter(stopStrings);
            var text = new StringBuilder();
            void Emit(string piece)
            {
                if (piece.Length == 0) return;
                text.Append(piece);
                _pieces.Writer.TryWrite(piece);
            }

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            var result = model.Generator.Generate(prompt, options, id =>
            {
                Emit(filter.Push(decoder.Push(id)));
                if (filter.Stopped) stop.Cancel();
            }, stop.Token);
            if (result.FinishReason == FinishReason.Cancelled && !filter.Stopped)
            {
                _outcome.TrySetCanceled(cancellation);
                return;
            }
            Emit(filter.Push(decoder.Flush()));
            Emit(filter.Flush());
            string finish = filter.Stopped || result.FinishReason == FinishReason.Stop ? "stop" : "length";
            _outcome.TrySetResult(new GenerationOutcome(text.ToString(), finish, prompt.Length, result.NewIds.Length));
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
