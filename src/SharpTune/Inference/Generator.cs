using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Inference;

public enum FinishReason
{
    /// <summary>A stop token was produced.</summary>
    Stop,
    /// <summary>max_new_tokens was reached.</summary>
    Length,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <param name="NewIds">The generated ids, without the stop token.</param>
/// <param name="StopTokenId">The stop token that ended generation, when FinishReason is Stop.</param>
public sealed record GenerationResult(int[] NewIds, FinishReason FinishReason, int? StopTokenId = null);

/// <summary>
/// Autoregressive decoding of one sequence: the prompt is prefilled in one pass (GEMM path), then each new token
/// is one cached step (GEMV path). Greedy or sampled, with Hugging Face's logits processors.
/// </summary>
public sealed class Generator(DecoderModel model)
{
    public DecoderModel Model { get; } = model;

    /// <param name="onToken">Called with each new id as soon as it is chosen (stop tokens are not reported).</param>
    public GenerationResult Generate(IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? onToken = null, CancellationToken cancellation = default)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty");
        int hiddenSize = Model.Config.HiddenSize;
        var cache = Model.CreateCache(1, prompt.Count + Math.Max(1, options.MaxNewTokens));
        var random = options.Seed is int seed ? new Random(seed) : new Random();
        var sequence = new List<int>(prompt);
        var generated = new List<int>();

        var ids = prompt.ToArray();
        var positions = Enumerable.Range(0, ids.Length).ToArray();
        var mask = Enumerable.Repeat((byte)1, ids.Length).ToArray();
        var hidden = new Tensor(ids.Length, hiddenSize);
        var last = new Tensor(1, hiddenSize);
        var logits = new Tensor(1, Model.Config.VocabSize);
        Model.Forward(ids, positions, mask, 1, ids.Length, cache, hidden);
        hidden.Row(ids.Length - 1).CopyTo(last.Row(0));

        var stepHidden = new Tensor(1, hiddenSize);
        int[] stepId = new int[1], stepPosition = new int[1];
        byte[] stepMask = [1];
        while (generated.Count < options.MaxNewTokens)
        {
            if (cancellation.IsCancellationRequested) return new GenerationResult(generated.ToArray(), FinishReason.Cancelled);
            Model.Logits(last, 1, logits);
            int next = Choose(logits.Span, sequence, options, random);
            if (options.StopTokenIds.Contains(next)) return new GenerationResult(generated.ToArray(), FinishReason.Stop, next);
            generated.Add(next);
            sequence.Add(next);
            onToken?.Invoke(next);
            if (generated.Count == options.MaxNewTokens) break;

            stepId[0] = next;
            stepPosition[0] = sequence.Count - 1;
            Model.Forward(stepId, stepPosition, stepMask, 1, 1, cache, stepHidden);
            stepHidden.Row(0).CopyTo(last.Row(0));
        }
        return new GenerationResult(generated.ToArray(), FinishReason.Length);
    }

    private static int Choose(Span<float> logits, IReadOnlyList<int> sequence, GenerationOptions o, Random random)
    {
        LogitsProcessing.ApplyRepetitionPenalty(logits, sequence, o.RepetitionPenalty);
        LogitsProcessing.ApplyNoRepeatNgram(logits, sequence, o.NoRepeatNgramSize);
        if (!o.DoSample) return LogitsProcessing.ArgMax(logits);
        LogitsProcessing.ApplyTemperature(logits, o.Temperature);
        LogitsProcessing.ApplyTopK(logits, o.TopK);
        LogitsProcessing.ApplyTopP(logits, o.TopP);
        return LogitsProcessing.Sample(logits, random);
    }
}
