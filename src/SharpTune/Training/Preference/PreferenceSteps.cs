using SharpTune.Data;
using SharpTune.Training.Model;

namespace SharpTune.Training.Preference;

/// <summary>
/// One step of the DPO family on a pairwise batch (chosen rows, then rejected rows): the reference log-probs without
/// gradient (when the loss has a reference), then one policy forward over both halves whose backward carries the
/// sequence-level gradient of <see cref="PairwiseObjective"/>. The training stage and <c>check pref</c> both run it.
/// </summary>
public sealed class PairwiseStep(DecoderModel policy, ReferenceModel? reference, PairLoss loss, double ftx)
{
    public PairLoss Loss { get; } = loss;

    /// <summary>Forward and backward; gradScale·dLoss/dθ is added to every trainable gradient.</summary>
    public PairwiseResult Train(TrainingBatch pairs, float gradScale, SeededRandom random)
    {
        var (objective, referenceSums) = Prepare(pairs);
        var result = policy.ForwardBackward(pairs, objective, gradScale, random);
        return new PairwiseResult(result, objective.Outcome!, referenceSums);
    }

    /// <summary>The loss and outcome without dropout or gradients.</summary>
    public PairwiseResult Evaluate(TrainingBatch pairs)
    {
        var (objective, referenceSums) = Prepare(pairs);
        var result = policy.Evaluate(pairs, objective);
        return new PairwiseResult(result, objective.Outcome!, referenceSums);
    }

    private (PairwiseObjective Objective, double[]? ReferenceSums) Prepare(TrainingBatch pairs)
    {
        double[]? referenceSums = null;
        if (Loss.NeedsReference)
            referenceSums = (reference ?? throw new InvalidOperationException($"pref_loss {Loss.Name} needs a reference model")).LogProbSums(pairs);
        return (new PairwiseObjective(Loss, ftx, referenceSums), referenceSums);
    }

    /// <summary>
    /// A pairwise batch as LLaMA-Factory's pairwise collator lays it out: the chosen rows, then the rejected rows, all
    /// right-padded to the longer length (pad id, attention mask 0, label −100).
    /// </summary>
    public static TrainingBatch Concatenate(TrainingBatch chosen, TrainingBatch rejected, int padTokenId)
    {
        if (chosen.Batch != rejected.Batch) throw new ArgumentException($"{chosen.Batch} chosen rows but {rejected.Batch} rejected rows");
        int rows = chosen.Batch + rejected.Batch, t = Math.Max(chosen.Length, rejected.Length);
        var ids = new int[rows * t];
        var mask = new int[rows * t];
        var labels = new int[rows * t];
        Array.Fill(ids, padTokenId);
        Array.Fill(labels, CausalLmLoss.IgnoreIndex);
        int row = 0;
        foreach (var half in new[] { chosen, rejected })
            for (int b = 0; b < half.Batch; b++, row++)
            {
                Array.Copy(half.InputIds, b * half.Length, ids, row * t, half.Length);
                Array.Copy(half.AttentionMask, b * half.Length, mask, row * t, half.Length);
                Array.Copy(half.Labels, b * half.Length, labels, row * t, half.Length);
            }
        return new TrainingBatch(rows, t, ids, mask, labels);
    }

    /// <summary>
    /// The metrics LLaMA-Factory's DPO trainer stores per batch: rewards/chosen, rewards/rejected, rewards/accuracies,
    /// rewards/margins, logps/chosen, logps/rejected (the values the loss reads: sums, or averages for ipo, orpo and
    /// simpo), logits/chosen, logits/rejected (the mean logit over the label positions, as TRL computes them), and for
    /// orpo sft_loss and odds_ratio_loss.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, double>> Metrics(PairwiseResult result, TrainingBatch pairs)
    {
        var o = result.Outcome;
        int n = o.Losses.Length;
        var counts = Objectives.LabelTokens.Of(pairs).CountPerSequence;
        double Logged(double sum, int row) => Loss.AveragesLogProbs ? sum / counts[row] : sum;
        var metrics = new List<KeyValuePair<string, double>>
        {
            new("rewards/chosen", o.RewardsChosen.Average()),
            new("rewards/rejected", o.RewardsRejected.Average()),
            new("rewards/accuracies", o.RewardsChosen.Zip(o.RewardsRejected).Count(p => p.First > p.Second) / (double)n),
            new("rewards/margins", o.RewardsChosen.Zip(o.RewardsRejected).Average(p => p.First - p.Second)),
            new("logps/chosen", Enumerable.Range(0, n).Average(p => Logged(o.PolicyChosen[p], p))),
            new("logps/rejected", Enumerable.Range(0, n).Average(p => Logged(o.PolicyRejected[p], n + p))),
            new("logits/chosen", o.MeanLogitsChosen),
            new("logits/rejected", o.MeanLogitsRejected),
        };
        if (Loss is OrpoPairLoss)
        {
            metrics.Add(new("sft_loss", o.SftLosses.Average()));
            metrics.Add(new("odds_ratio_loss", o.Losses.Zip(o.SftLosses).Average(p => (p.First - p.Second) / Loss.Beta)));
        }
        return metrics;
    }
}

/// <summary>A pairwise step's loss (Mean = the mean over the pairs), outcome, and the reference sums when there was a reference.</summary>
public sealed record PairwiseResult(LossResult Loss, PairOutcome Outcome, double[]? ReferenceSums);

/// <summary>
/// One KTO step: the policy's log-probs on the mismatched KL batch and the reference's on both batches, all without
/// gradient, give KL = max(0, mean(π_KL − ρ_KL)); then one policy forward and backward on the batch with
/// <see cref="KtoObjective"/>. The policy's KL pass runs without dropout (LLaMA-Factory's runs in training mode under
/// no_grad; ours draws nothing from the dropout stream for it).
/// </summary>
public sealed class KtoStep(DecoderModel policy, ReferenceModel reference, double beta, double desirableWeight, double undesirableWeight, double ftx)
{
    public KtoResult Train(TrainingBatch batch, TrainingBatch klBatch, bool[] desirable, float gradScale, SeededRandom random)
    {
        var (objective, referenceSums) = Prepare(batch, klBatch, desirable);
        var result = policy.ForwardBackward(batch, objective, gradScale, random);
        return new KtoResult(result, objective.Outcome!, referenceSums, desirable);
    }

    public KtoResult Evaluate(TrainingBatch batch, TrainingBatch klBatch, bool[] desirable)
    {
        var (objective, referenceSums) = Prepare(batch, klBatch, desirable);
        var result = policy.Evaluate(batch, objective);
        return new KtoResult(result, objective.Outcome!, referenceSums, desirable);
    }

    private (KtoObjective Objective, double[] ReferenceSums) Prepare(TrainingBatch batch, TrainingBatch klBatch, bool[] desirable)
    {
        if (klBatch.Batch != batch.Batch) throw new ArgumentException($"the KL batch has {klBatch.Batch} rows for a batch of {batch.Batch}");
        double kl = KtoObjective.KlEstimate(policy.LogProbs(klBatch).SumPerSequence, reference.LogProbSums(klBatch));
        double[] referenceSums = reference.LogProbSums(batch);
        return (new KtoObjective(beta, desirableWeight, undesirableWeight, ftx, desirable, referenceSums, kl), referenceSums);
    }

    /// <summary>
    /// The metrics TRL's and LLaMA-Factory's KTO trainers store per batch: sums over the batch's desirable
    /// (rewards/chosen_sum, logps/chosen_sum, logits/chosen_sum, count/chosen) and undesirable examples (…_rejected…),
    /// each only when the batch has such examples, and kl; <see cref="KtoMetrics.Logged"/> turns them into what is logged.
    /// logits/*_sum adds each example's mean logit over its label positions.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, double>> Metrics(KtoResult result)
    {
        var o = result.Outcome;
        var metrics = new List<KeyValuePair<string, double>>();
        foreach (var (split, wanted) in new[] { ("chosen", true), ("rejected", false) })
        {
            var rows = Enumerable.Range(0, o.Policy.Length).Where(s => result.Desirable[s] == wanted).ToArray();
            if (rows.Length == 0) continue;
            metrics.Add(new($"rewards/{split}_sum", rows.Sum(s => o.Rewards[s])));
            metrics.Add(new($"logps/{split}_sum", rows.Sum(s => o.Policy[s])));
            metrics.Add(new($"logits/{split}_sum", rows.Sum(s => o.MeanLogits[s])));
            metrics.Add(new($"count/{split}", rows.Length));
        }
        metrics.Add(new("kl", o.Kl));
        return metrics;
    }
}

public sealed record KtoResult(LossResult Loss, KtoOutcome Outcome, double[] ReferenceSums, bool[] Desirable);
