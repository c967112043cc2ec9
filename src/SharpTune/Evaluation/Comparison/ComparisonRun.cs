using System.Diagnostics;
using SharpTune.Evaluation.Metrics;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Evaluation.Comparison;

/// <summary>One model's answer to one question.</summary>
/// <param name="Tokens">Generated tokens, the stop token not counted.</param>
/// <param name="Scores">BLEU-4 and ROUGE against the question's reference, as <see cref="GenerationMetrics"/> scores them; null without a reference.</param>
public sealed record ComparisonAnswer(string Text, int Tokens, FinishReason FinishReason, GenerationScores? Scores);

/// <summary>Every answer of one model (the base, or the base with one adapter), in question order.</summary>
/// <param name="Name">The column's name: "base", or the adapter folder's name.</param>
/// <param name="AdapterDirectory">The adapter applied to the base, or null for the base itself.</param>
public sealed record ComparisonColumn(string Name, string? AdapterDirectory, IReadOnlyList<ComparisonAnswer> Answers, TimeSpan Elapsed)
{
    public long GeneratedTokens => Answers.Sum(a => (long)a.Tokens);

    /// <summary>
    /// The averaged BLEU-4 and ROUGE scores of the answers that were scored (those whose question has a reference),
    /// as a prediction run averages them; null when none was.
    /// </summary>
    public IReadOnlyDictionary<string, double>? MeanScores()
    {
        var scored = Answers.Where(a => a.Scores is not null).Select(a => a.Scores!.Value).ToList();
        return scored.Count == 0 ? null : GenerationMetrics.Mean(scored);
    }
}

/// <summary>
/// Answers every question with one model, in batches (left-padded, <see cref="BatchGenerator"/>). The same options
/// serve every model of a comparison, and question i is always generated with seed Seed + i, so the columns differ
/// by the weights alone. An answer is the template's <see cref="ChatTemplate.ReplyContent"/> of the generated text,
/// as chat shows it.
/// </summary>
public static class ComparisonRun
{
    public static ComparisonColumn Answer(string name, string? adapterDirectory, DecoderModel model, Tokenizer tokenizer, ChatTemplate template,
        IReadOnlyList<ComparisonQuestion> questions, GenerationOptions options, int batchSize, int padTokenId, IRunObserver? observer = null,
        CancellationToken cancellation = default)
    {
        if (questions.Count == 0) throw new ArgumentException("there are no questions to answer");
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        observer ??= RunObservers.None;
        observer.On(new PredictionStarted(name, questions.Count));
        var generator = new BatchGenerator(model);
        var answers = new List<ComparisonAnswer>(questions.Count);
        long generated = 0;
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < questions.Count; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            var batch = questions.Skip(start).Take(batchSize).ToList();
            var batchOptions = options.Seed is int seed ? options with { Seed = unchecked(seed + start) } : options;
            var results = generator.Generate(batch.Select(q => (IReadOnlyList<int>)q.PromptIds).ToList(), batchOptions, padTokenId: padTokenId);
            for (int i = 0; i < batch.Count; i++)
            {
                var result = results[i];
                string text = template.ReplyContent(tokenizer.Decode(result.NewIds, skipSpecialTokens: true));
                var scores = batch[i].Reference is string reference ? GenerationMetrics.Score(text, reference) : (GenerationScores?)null;
                answers.Add(new ComparisonAnswer(text, result.NewIds.Length, result.FinishReason, scores));
                generated += result.NewIds.Length;
            }
            observer.On(new PredictionProgressed(name, answers.Count, questions.Count, generated, clock.Elapsed));
        }
        observer.On(new PredictionEnded(name));
        return new ComparisonColumn(name, adapterDirectory, answers, clock.Elapsed);
    }
}
