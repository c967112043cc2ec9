using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Inference;

/// <summary>
/// Autoregressive decoding of several prompts at once, as transformers' generate() does with a left-padded batch:
/// the prompts are padded on the left to the longest one with attention mask 0 on the pads, positions are
/// cumsum(mask) − 1 (pads get 1), the batch is prefilled in one pass (GEMM path) and then decoded one cached step
/// per token for all sequences together. Each sequence has its own logits processors and, when sampling, its own
/// random generator (seeded Seed + its index), so a sequence's tokens do not depend on the others in the batch.
/// A finished sequence (stop token or max_new_tokens) keeps its slot but adds nothing more to its output.
/// </summary>
public sealed class BatchGenerator(DecoderModel model)
{
    public DecoderModel Model { get; } = model;

    /// <param name="prompts">The prompts' token ids, none empty.</param>
    /// <param name="onToken">Called with (sequence index, id) as each new id is chosen (stop tokens are not reported).</param>
    /// <param name="padTokenId">The id written into padded slots; it is masked out, so any valid id gives the same result.</param>
    /// <param name="constraints">Per sequence, null or the rule its tokens must follow; a sequence ends as stopped once its constraint must stop.</param>
    /// <returns>One result per prompt, in order.</returns>
    public GenerationResult[] Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options,
        Action<int, int>? onToken = null, CancellationToken cancellation = default, int padTokenId = 0, IReadOnlyList<ITokenConstraint?>? constraints = null)
    {
        options.Validate();
        int batch = prompts.Count;
        if (batch == 0) throw new ArgumentException("no prompts to generate for");
        if (constraints is not null && constraints.Count != batch) throw new ArgumentException($"{constraints.Count} constraints for {batch} prompts");
        for (int b = 0; b < batch; b++)
            if (prompts[b].Count == 0) throw new ArgumentException(batch == 1 ? "the prompt is empty" : $"prompt {b} is empty");

        int width = prompts.Max(p => p.Count);
        int hiddenSize = Model.Config.HiddenSize, vocab = Model.Config.VocabSize;
        var cache = Model.CreateCache(batch, width + Math.Max(1, options.MaxNewTokens));
        var sequences = new Sequence[batch];
        for (int b = 0; b < batch; b++)
            sequences[b] = new Sequence(prompts[b], options.Seed is int seed ? new Random(unchecked(seed + b)) : new Random());

        var ids = new int[batch * width];
        var positions = new int[batch * width];
        var mask = new byte[batch * width];
        for (int b = 0; b < batch; b++)
        {
            int pad = width - prompts[b].Count;
            for (int j = 0; j < width; j++)
            {
                int at = b * width + j;
                bool real = j >= pad;
                ids[at] = real ? prompts[b][j - pad] : padTokenId;
                positions[at] = real ? j - pad : 1;
                mask[at] = real ? (byte)1 : (byte)0;
            }
        }
        var backend = Model.Backend;
        var hidden = backend.Allocate(batch * width, hiddenSize);
        var last = backend.Allocate(batch, hiddenSize);
        var logits = backend.Allocate(batch, vocab);
        // The logits of one sequence, read back to the host where sampling runs.
        var row = new float[vocab];
        Model.Forward(ids, positions, mask, batch, width, cache, hidden);
        for (int b = 0; b < batch; b++) backend.CopyRows(hidden, b * width + width - 1, last, b, 1);

        var stepIds = new int[batch];
        var stepPositions = new int[batch];
        var stepMask = new byte[batch];
        if (options.MaxNewTokens == 0)
            foreach (var s in sequences) s.Finish(FinishReason.Length);
        while (sequences.Any(s => s.Result is null))
        {
            if (cancellation.IsCancellationRequested)
            {
                foreach (var s in sequences) s.Finish(FinishReason.Cancelled);
                break;
            }
            Model.Logits(last, batch, logits);
            for (int b = 0; b < batch; b++)
            {
                var s = sequences[b];
                if (s.Result is not null) continue;
                var constraint = constraints?[b];
                backend.CopyToHost(logits, (long)b * vocab, row);
                int next = Choose(row, s.Tokens, options, s.Random, constraint);
                if (options.StopTokenIds.Contains(next))
                {
                    s.Finish(FinishReason.Stop, next);
                    continue;
                }
                constraint?.Accept(next);
                s.Add(next);
                onToken?.Invoke(b, next);
                if (constraint is { MustStop: true }) s.Finish(FinishReason.Stop);
                else if (s.Generated.Count >= options.MaxNewTokens) s.Finish(FinishReason.Length);
            }
            if (sequences.All(s => s.Result is not null)) break;

            for (int b = 0; b < batch; b++)
            {
                var s = sequences[b];
                bool active = s.Result is null;
                stepIds[b] = active ? s.Tokens[^1] : padTokenId;
                stepPositions[b] = active ? s.Tokens.Count - 1 : 1;
                stepMask[b] = active ? (byte)1 : (byte)0;
            }
            Model.Forward(stepIds, stepPositions, stepMask, batch, 1, cache, last);
        }
        return sequences.Select(s => s.Result!).ToArray();
    }

    private static int Choose(Span<float> logits, IReadOnlyList<int> sequence, GenerationOptions o, Random random, ITokenConstraint? constraint)
    {
        LogitsProcessing.ApplyRepetitionPenalty(logits, sequence, o.RepetitionPenalty);
        LogitsProcessing.ApplyNoRepeatNgram(logits, sequence, o.NoRepeatNgramSize);
        if (!o.DoSample)
            return constraint is null ? LogitsProcessing.ArgMax(logits) : LogitsProcessing.ConstrainedArgMax(logits, constraint, o.StopTokenIds);
        if (constraint is not null) LogitsProcessing.ApplyConstraint(logits, constraint, o.StopTokenIds);
        LogitsProcessing.ApplyTemperature(logits, o.Temperature);
        LogitsProcessing.ApplyTopK(logits, o.TopK);
        LogitsProcessing.ApplyTopP(logits, o.TopP);
        return LogitsProcessing.Sample(logits, random);
    }

    /// <summary>One sequence of the batch: its prompt and tokens so far, its generator, and its result once finished.</summary>
    private sealed class Sequence(IReadOnlyList<int> prompt, Random random)
    {
        public List<int> Tokens { get; } = [.. prompt];
        public List<int> Generated { get; } = [];
        public Random Random { get; } = random;
        public GenerationResult? Result { get; private set; }

        public void Add(int id)
        {
            Tokens.Add(id);
            Generated.Add(id);
        }

        public void Finish(FinishReason reason, int? stopTokenId = null) =>
            Result ??= new GenerationResult(Generated.ToArray(), reason, stopTokenId);
    }
}
