using SharpTune.Data;
using SharpTune.Training.Trainer;

namespace SharpTune.Training.Preference;

/// <summary>Stage dpo's step for the trainer: the pairs collated as chosen rows then rejected rows, through <see cref="PairwiseStep"/>.</summary>
public sealed class PairwiseTrainingStep(PairwiseStep step, IBatchCollator<PairwiseExample> collator) : ITrainingStep<PairwiseExample>
{
    public StepResult ForwardBackward(IReadOnlyList<PairwiseExample> examples, float gradScale, SeededRandom random)
    {
        var batch = collator.Collate(examples);
        var result = step.Train(batch, gradScale, random);
        return new StepResult(result.Loss.Mean, batch.RealTokens, step.Metrics(result, batch));
    }

    public StepResult Evaluate(IReadOnlyList<PairwiseExample> examples)
    {
        var batch = collator.Collate(examples);
        var result = step.Evaluate(batch);
        return new StepResult(result.Loss.Mean, batch.RealTokens, step.Metrics(result, batch));
    }

    public bool ReportsPerplexity => false;
}

/// <summary>
/// Stage kto's step for the trainer: the examples, their KL batch and tags collated (<see cref="KtoInputs"/>), through
/// <see cref="KtoStep"/>; what is logged is aggregated as TRL's KTO trainer does.
/// </summary>
public sealed class KtoTrainingStep(KtoStep step, IBatchCollator<KtoExample> collator) : ITrainingStep<KtoExample>
{
    public StepResult ForwardBackward(IReadOnlyList<KtoExample> examples, float gradScale, SeededRandom random)
    {
        var batch = collator.Collate(examples);
        var kto = batch.Kto ?? throw new InvalidOperationException("the KTO collator gave no KL batch");
        var result = step.Train(batch, kto.KlBatch, kto.Desirable, gradScale, random);
        return new StepResult(result.Loss.Mean, batch.RealTokens, KtoStep.Metrics(result));
    }

    public StepResult Evaluate(IReadOnlyList<KtoExample> examples)
    {
        var batch = collator.Collate(examples);
        var kto = batch.Kto ?? throw new InvalidOperationException("the KTO collator gave no KL batch");
        var result = step.Evaluate(batch, kto.KlBatch, kto.Desirable);
        return new StepResult(result.Loss.Mean, batch.RealTokens, KtoStep.Metrics(result));
    }

    public bool ReportsPerplexity => false;

    /// <summary>
    /// TRL's KTOTrainer.log: per split with stored counts, rewards/, logps/ and logits/{split} = Σ of the stored sums /
    /// Σ of the counts; rewards/margins = rewards/chosen − rewards/rejected when both are there; every other stored
    /// key (kl) as its mean.
    /// </summary>
    public IEnumerable<KeyValuePair<string, object?>> Logged(MetricStore stored, string prefix)
    {
        var logged = new List<KeyValuePair<string, object?>>();
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        var means = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string split in new[] { "chosen", "rejected" })
        {
            if (!stored.Contains($"count/{split}")) continue;
            double count = stored[$"count/{split}"].Sum();
            consumed.Add($"count/{split}");
            foreach (string metric in new[] { "rewards", "logps", "logits" })
            {
                string key = $"{metric}/{split}";
                means[key] = stored[$"{key}_sum"].Sum() / count;
                consumed.Add($"{key}_sum");
                logged.Add(new(prefix + key, means[key]));
            }
        }
        if (means.TryGetValue("rewards/chosen", out double chosen) && means.TryGetValue("rewards/rejected", out double rejected))
            logged.Add(new(prefix + "rewards/margins", chosen - rejected));
        foreach (string key in stored.Keys.Where(k => !consumed.Contains(k)))
            logged.Add(new(prefix + key, stored[key].Average()));
        return logged;
    }
}
