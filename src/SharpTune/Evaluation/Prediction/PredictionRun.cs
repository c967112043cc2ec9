using System.Diagnostics;
using SharpTune.Data;
using SharpTune.Evaluation.Metrics;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Trainer;

namespace SharpTune.Evaluation.Prediction;

/// <summary>How a prediction run generates and decodes.</summary>
/// <param name="Options">Sampling settings and stop tokens; Seed, when set, is the first example's seed (example i uses Seed + i).</param>
/// <param name="BatchSize">per_device_eval_batch_size: prompts generated together, left-padded.</param>
/// <param name="SkipSpecialTokens">skip_special_tokens: whether predict and label drop special tokens when decoded.</param>
/// <param name="PadTokenId">The id written into the left padding (masked out).</param>
public sealed record PredictionSettings(GenerationOptions Options, int BatchSize, bool SkipSpecialTokens, int PadTokenId);

/// <summary>One line of generated_predictions.jsonl.</summary>
public sealed record Prediction(string Prompt, string Predict, string Label);

/// <summary>What a prediction run produced: the predictions in example order and predict_results.json's metrics.</summary>
public sealed record PredictionOutcome(IReadOnlyList<Prediction> Predictions, IReadOnlyList<KeyValuePair<string, object?>> Metrics);

/// <summary>A prediction run's predictions, in example order, which the result files write as generated_predictions.jsonl.</summary>
public sealed record PredictionsMade(IReadOnlyList<Prediction> Predictions) : RunEvent;

/// <summary>
/// LLaMA-Factory's do_predict with predict_with_generate: the eval examples' prompts are generated for in batches
/// of per_device_eval_batch_size (left-padded, <see cref="BatchGenerator"/>), then the run reports what the result
/// files (<c>Reporting/ResultFiles</c>) write, as its <c>CustomSeq2SeqTrainer.save_predictions</c> writes them:
/// output_dir/generated_predictions.jsonl holds one
/// <c>{"prompt", "predict", "label"}</c> line per example (the prompt decoded with its special tokens, predict and
/// label with or without them per skip_special_tokens), and predict_results.json (merged into all_results.json)
/// holds LLaMA-Factory's predict_bleu-4 and predict_rouge-1/2/l (<see cref="GenerationMetrics"/>), transformers'
/// speed metrics and the generation throughput.
/// </summary>
public static class PredictionRun
{
    public const string PredictionsFileName = "generated_predictions.jsonl";

    /// <summary>The label of its <see cref="PredictionProgressed"/> events.</summary>
    public const string ProgressLabel = "predict";

    public static PredictionOutcome Execute(DecoderModel model, Tokenizer tokenizer, IReadOnlyList<GenerationExample> examples,
        PredictionSettings settings, IRunObserver? observer = null)
    {
        if (examples.Count == 0) throw new ArgumentException("there are no examples to predict");
        if (settings.BatchSize <= 0) throw new ArgumentException($"per_device_eval_batch_size must be positive, got {settings.BatchSize}");
        observer ??= RunObservers.None;
        observer.On(new PredictionStarted(ProgressLabel, examples.Count));
        var generator = new BatchGenerator(model);
        var predictions = new List<Prediction>(examples.Count);
        // LLaMA-Factory's ComputeSimilarity scores the texts decoded without special tokens, whatever skip_special_tokens says.
        var scoredPredictions = new List<string>(examples.Count);
        var scoredLabels = new List<string>(examples.Count);
        var clock = Stopwatch.StartNew();
        long generatedTokens = 0;
        int batches = 0;
        for (int start = 0; start < examples.Count; start += settings.BatchSize)
        {
            var batch = new List<GenerationExample>();
            for (int i = start; i < Math.Min(start + settings.BatchSize, examples.Count); i++) batch.Add(examples[i]);
            var options = settings.Options.Seed is int seed ? settings.Options with { Seed = unchecked(seed + start) } : settings.Options;
            var results = generator.Generate(batch.Select(e => (IReadOnlyList<int>)e.PromptIds).ToList(), options, padTokenId: settings.PadTokenId);
            for (int i = 0; i < batch.Count; i++)
            {
                var result = results[i];
                // The stop token was generated too; LLaMA-Factory's predict keeps it, so it shows when special tokens are kept.
                int[] produced = result.StopTokenId is int stop ? [.. result.NewIds, stop] : result.NewIds;
                generatedTokens += produced.Length;
                predictions.Add(new Prediction(
                    tokenizer.Decode(batch[i].PromptIds, skipSpecialTokens: false),
                    tokenizer.Decode(produced, settings.SkipSpecialTokens),
                    tokenizer.Decode(batch[i].LabelIds, settings.SkipSpecialTokens)));
                scoredPredictions.Add(tokenizer.Decode(produced, skipSpecialTokens: true));
                scoredLabels.Add(tokenizer.Decode(batch[i].LabelIds, skipSpecialTokens: true));
            }
            batches++;
            observer.On(new PredictionProgressed(ProgressLabel, predictions.Count, examples.Count, generatedTokens, clock.Elapsed));
        }
        double runtime = clock.Elapsed.TotalSeconds;
        observer.On(new PredictionEnded(ProgressLabel));

        var metrics = GenerationMetrics.Compute(scoredPredictions, scoredLabels)
            .Select(m => new KeyValuePair<string, object?>("predict_" + m.Key, m.Value)).ToList();
        metrics.AddRange(
        [
            new("predict_runtime", PythonJson.Round(runtime, 4)),
            new("predict_samples_per_second", PythonJson.Round(examples.Count / runtime, 3)),
            new("predict_steps_per_second", PythonJson.Round(batches / runtime, 3)),
            new("predict_generated_tokens", generatedTokens),
            new("predict_tokens_per_second", PythonJson.Round(generatedTokens / runtime, 3)),
        ]);
        observer.On(new PredictionsMade(predictions));
        observer.On(new ResultsReported("predict", metrics));
        return new PredictionOutcome(predictions, metrics);
    }

    /// <summary>
    /// The stop tokens LLaMA-Factory's SFT workflow gives generate(): the template's (<see cref="ChatTemplate.StopTokenIds"/>:
    /// its eos and stop words, which LLaMA-Factory adds as special tokens when it fixes the tokenizer) and the
    /// tokenizer's additional_special_tokens; the tokenizer's eos when the template has none bound.
    /// </summary>
    public static HashSet<int> StopTokenIds(Tokenizer tokenizer, ChatTemplate template, string modelDir)
    {
        var ids = new HashSet<int>(template.StopTokenIds(tokenizer));
        var texts = new List<string?>(TokenizerConfig.AdditionalSpecialTokens(modelDir));
        if (template.EosToken is null) texts.Add(TokenizerConfig.EosToken(modelDir));
        foreach (string? text in texts)
            if (text is not null && tokenizer.TokenToId(text) is int id) ids.Add(id);
        return ids;
    }
}
