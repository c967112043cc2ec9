using System.Diagnostics;
using SharpTune.Data;

namespace SharpTune.Training.Trainer;

/// <summary>
/// transformers' evaluation loop over an eval set: batches of per_device_eval_batch_size in order, formed by the
/// stage's collator, the loss through the model's chunked cross-entropy (never the whole logits tensor).
/// Used during training (eval_strategy, the final evaluation) and alone for do_eval without do_train.
/// </summary>
public class LossEvaluator<TExample>
{
    private readonly ITrainingStep<TExample> _step;
    private readonly IReadOnlyList<TExample> _examples;
    private readonly int _batchSize;

    public LossEvaluator(ITrainableModel model, IReadOnlyList<TExample> examples, int batchSize, IBatchCollator<TExample> collator)
        : this(new CrossEntropyStep<TExample>(model, collator), examples, batchSize)
    {
    }

    public LossEvaluator(ITrainingStep<TExample> step, IReadOnlyList<TExample> examples, int batchSize)
    {
        if (examples.Count == 0) throw new ArgumentException("there is no evaluation set (set eval_dataset or val_size)");
        if (batchSize <= 0) throw new ArgumentException($"per_device_eval_batch_size must be positive, got {batchSize}");
        _step = step;
        _examples = examples;
        _batchSize = batchSize;
    }

    /// <summary>Called after each batch with the number of examples evaluated so far (for progress reports).</summary>
    public Action<int>? ExamplesDone { get; init; }

    /// <summary>
    /// eval_loss = the mean over examples of their batch's mean loss (each batch's loss repeated batch-size times);
    /// the step's stored metrics are logged after the speed metrics as eval_ keys.
    /// </summary>
    public EvalResult Evaluate()
    {
        var clock = Stopwatch.StartNew();
        double weighted = 0;
        int batches = 0;
        var stored = new MetricStore();
        for (int start = 0; start < _examples.Count; start += _batchSize)
        {
            var batch = new List<TExample>();
            for (int i = start; i < Math.Min(start + _batchSize, _examples.Count); i++) batch.Add(_examples[i]);
            var result = _step.Evaluate(batch);
            weighted += result.Loss * batch.Count;
            stored.Add(result.Metrics);
            batches++;
            ExamplesDone?.Invoke(start + batch.Count);
        }
        double runtime = clock.Elapsed.TotalSeconds;
        return new EvalResult(weighted / _examples.Count, PythonJson.Round(runtime, 4),
            PythonJson.Round(_examples.Count / runtime, 3), PythonJson.Round(batches / runtime, 3), _step.Logged(stored, "eval_").ToList());
    }

    /// <summary>
    /// do_eval without training, as LLaMA-Factory runs it: one evaluation pass; eval_loss, the speed metrics, the
    /// step's metrics and perplexity = exp(eval_loss) (when the step reports it) are reported as the eval split's <see cref="ResultsReported"/> (eval_results.json,
    /// merged into all_results.json, by the result files).
    /// </summary>
    public (EvalResult Result, IReadOnlyList<KeyValuePair<string, object?>> Metrics) EvaluateAndReport(IRunObserver observer)
    {
        var result = Evaluate();
        var metrics = result.Metrics();
        if (_step.ReportsPerplexity) metrics.Add(new("perplexity", result.Perplexity));
        observer.On(new ResultsReported("eval", metrics));
        return (result, metrics);
    }
}

/// <summary>The evaluation loop over supervised examples (sft, pt), right-padded by <see cref="SupervisedCollator"/>.</summary>
public sealed class LossEvaluator(ITrainableModel model, IReadOnlyList<SupervisedExample> examples, int batchSize, int padTokenId)
    : LossEvaluator<SupervisedExample>(model, examples, batchSize, new SupervisedBatches(padTokenId));
