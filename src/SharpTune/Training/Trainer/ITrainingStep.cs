using SharpTune.Data;

namespace SharpTune.Training.Trainer;

/// <summary>
/// What the trainer and the evaluation loop ask of a stage for one batch of its examples: a forward and backward (or
/// an evaluation pass), the batch's mean loss, its real tokens, and the metrics the stage stores per batch
/// (LLaMA-Factory's store_metrics: rewards/* for dpo, kl for kto, …). SFT and pt take <see cref="CrossEntropyStep{TExample}"/>;
/// a stage with another objective brings its own step, not a trainer.
/// </summary>
public interface ITrainingStep<in TExample>
{
    /// <summary>gradScale·dLoss/dθ is added to every trainable gradient; dropout draws from <paramref name="random"/>.</summary>
    StepResult ForwardBackward(IReadOnlyList<TExample> examples, float gradScale, SeededRandom random);

    /// <summary>The same batch's loss and metrics without dropout or gradients.</summary>
    StepResult Evaluate(IReadOnlyList<TExample> examples);

    /// <summary>
    /// What is logged from the metrics stored since the last log, keys prefixed with <paramref name="prefix"/> ("" or
    /// "eval_"): by default each key's mean over the stored batches, as LLaMA-Factory's DPO trainer logs them.
    /// </summary>
    IEnumerable<KeyValuePair<string, object?>> Logged(MetricStore stored, string prefix) =>
        stored.Keys.Select(key => new KeyValuePair<string, object?>(prefix + key, stored[key].Average()));

    /// <summary>Whether a final evaluation also reports perplexity = exp(eval_loss) (a language-modelling loss).</summary>
    bool ReportsPerplexity => true;
}

/// <summary>A batch's mean loss, its real (unpadded) tokens, and the metrics it stores.</summary>
public sealed record StepResult(double Loss, int RealTokens, IReadOnlyList<KeyValuePair<string, double>> Metrics);

/// <summary>The cross-entropy of the collated batch through the model (sft, pt): no metrics beyond the loss.</summary>
public sealed class CrossEntropyStep<TExample>(ITrainableModel model, IBatchCollator<TExample> collator) : ITrainingStep<TExample>
{
    public StepResult ForwardBackward(IReadOnlyList<TExample> examples, float gradScale, SeededRandom random)
    {
        var batch = collator.Collate(examples);
        return new StepResult(model.ForwardBackward(batch, gradScale, random).Mean, batch.RealTokens, []);
    }

    public StepResult Evaluate(IReadOnlyList<TExample> examples)
    {
        var batch = collator.Collate(examples);
        return new StepResult(model.Evaluate(batch).Mean, batch.RealTokens, []);
    }
}

/// <summary>
/// The per-batch metrics stored between two logs (transformers' _stored_metrics of the DPO/KTO trainers): each key's
/// values in the order they came, keys in order of first appearance. Saved with a checkpoint so a resumed run logs
/// what an uninterrupted one would.
/// </summary>
public sealed class MetricStore
{
    private readonly List<string> _keys = [];
    private readonly Dictionary<string, List<double>> _values = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Keys => _keys;

    public IReadOnlyList<double> this[string key] => _values[key];

    public bool Contains(string key) => _values.ContainsKey(key);

    public void Add(IEnumerable<KeyValuePair<string, double>> metrics)
    {
        foreach (var (key, value) in metrics)
        {
            if (!_values.TryGetValue(key, out var list))
            {
                _values[key] = list = [];
                _keys.Add(key);
            }
            list.Add(value);
        }
    }

    public void Clear()
    {
        _keys.Clear();
        _values.Clear();
    }
}
