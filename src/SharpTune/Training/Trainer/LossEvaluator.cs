using System.Diagnostics;
using SharpTune.Data;

namespace SharpTune.Training.Trainer;

/// <summary>
/// transformers' evaluation loop over an eval set of supervised examples: batches of per_device_eval_batch_size in
/// order, right-padded, the loss through the model's chunked cross-entropy (never the whole logits tensor).
/// Used during training (eval_strategy, the final evaluation) and alone for do_eval without do_train.
/// </summary>
public sealed class LossEvaluator
{
    private readonly ITrainableModel _model;
    private readonly IReadOnlyList<SupervisedExample> _examples;
    private readonly int _batchSize;
    private readonly int _padTokenId;

    public LossEvaluator(ITrainableModel model, IReadOnlyList<SupervisedExample> examples, int batchSize, int padTokenId)
    {
        if (examples.Count == 0) throw new ArgumentException("there is no evaluation set (set eval_dataset or val_size)");
        if (batchSize <= 0) throw new ArgumentException($"per_device_eval_batch_size must be positive, got {batchSize}");
        _model = model;
        _examples = examples;
        _batchSize = batchSize;
        _padTokenId = padTokenId;
    }

    /// <summary>Called after each batch with the number of examples evaluated so far (for progress reports).</summary>
    public Action<int>? ExamplesDone { get; init; }

    /// <summary>eval_loss = the mean over examples of their batch's mean loss (each batch's loss repeated batch-size times).</summary>
    public EvalResult Evaluate()
    {
        var clock = Stopwatch.StartNew();
        double weighted = 0;
        int batches = 0;
        for (int start = 0; start < _examples.Count; start += _batchSize)
        {
            var batch = new List<SupervisedExample>();
            for (int i = start; i < Math.Min(start + _batchSize, _examples.Count); i++) batch.Add(_examples[i]);
            var result = _model.Evaluate(SupervisedCollator.Collate(batch, _padTokenId));
            weighted += result.Mean * batch.Count;
            batches++;
            ExamplesDone?.Invoke(start + batch.Count);
        }
        double runtime = clock.Elapsed.TotalSeconds;
        return new EvalResult(weighted / _examples.Count, PythonJson.Round(runtime, 4),
            PythonJson.Round(_examples.Count / runtime, 3), PythonJson.Round(batches / runtime, 3));
    }

    /// <summary>
    /// do_eval without training, as LLaMA-Factory runs it: one evaluation pass; eval_loss, the speed metrics and
    /// perplexity = exp(eval_loss) go to output_dir/eval_results.json and are merged into all_results.json.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, object?>> EvaluateAndSave(string outputDir)
    {
        var result = Evaluate();
        var metrics = Metrics(result);
        metrics.Add(new("perplexity", result.Perplexity));
        ResultFiles.Write(outputDir, "eval", metrics);
        return metrics;
    }

    /// <summary>The eval_* keys transformers' evaluate() returns.</summary>
    internal static List<KeyValuePair<string, object?>> Metrics(EvalResult result) =>
    [
        new("eval_loss", result.Loss),
        new("eval_runtime", result.Runtime),
        new("eval_samples_per_second", result.SamplesPerSecond),
        new("eval_steps_per_second", result.StepsPerSecond),
    ];
}
