using SharpTune.Data;
using SharpTune.Training.Model;

namespace SharpTune.Training.Objectives;

/// <summary>
/// The reward model's loss, LLaMA-Factory's PairwiseTrainer.compute_loss: a batch holds n chosen sequences then their
/// n rejected ones (right-padded), each scored by the value head at its last real token (attention_mask sum − 1);
/// loss = mean over pairs of −log σ(s_chosen − s_rejected), accuracy = the share of pairs with s_chosen &gt; s_rejected.
/// </summary>
/// <param name="dropout">Draws the value head's training dropout; null scores without dropout (evaluation, the conformance check).</param>
public sealed class PairwiseRewardLoss(ValueHead head, SeededRandom? dropout) : IHiddenStateObjective
{
    /// <summary>The last batch's scores, loss and accuracy.</summary>
    public PairScores? Last { get; private set; }

    public void Apply(TrainingBatch batch, ReadOnlySpan<float> hidden, float gradScale, Span<float> dHidden)
    {
        int h = head.HiddenSize, pairs = Pairs(batch);
        var rows = new int[2 * pairs];
        var masks = new float[]?[2 * pairs];
        var scores = new double[2 * pairs];
        for (int s = 0; s < rows.Length; s++)
        {
            rows[s] = LastTokenRow(batch, s);
            masks[s] = dropout is null ? null : head.DropoutMask(dropout);
            scores[s] = head.Score(hidden.Slice(rows[s] * h, h), masks[s]);
        }
        Last = PairScores.Of(scores, pairs);
        for (int p = 0; p < pairs; p++)
        {
            // d/dΔ of −log σ(Δ) is −σ(−Δ); the loss is the mean over pairs.
            double g = -Sigmoid(-(scores[p] - scores[pairs + p])) * gradScale / pairs;
            head.Backward(hidden.Slice(rows[p] * h, h), g, dHidden.Slice(rows[p] * h, h), masks[p]);
            head.Backward(hidden.Slice(rows[pairs + p] * h, h), -g, dHidden.Slice(rows[pairs + p] * h, h), masks[pairs + p]);
        }
    }

    /// <summary>The scores of an evaluation forward's hidden states (no dropout, no gradients).</summary>
    public static PairScores Evaluate(ValueHead head, TrainingBatch batch, ReadOnlySpan<float> hidden)
    {
        int pairs = Pairs(batch);
        return PairScores.Of(SequenceScores(head, batch, hidden), pairs);
    }

    /// <summary>Each sequence's score at its last real token, for a batch of any sequences (sharptune score).</summary>
    public static double[] SequenceScores(ValueHead head, TrainingBatch batch, ReadOnlySpan<float> hidden)
    {
        var scores = new double[batch.Batch];
        for (int s = 0; s < batch.Batch; s++)
            scores[s] = head.Score(hidden.Slice(LastTokenRow(batch, s) * head.HiddenSize, head.HiddenSize));
        return scores;
    }

    /// <summary>The flattened row of sequence <paramref name="s"/>'s last real token: attention_mask sum − 1, as LLaMA-Factory gathers it.</summary>
    public static int LastTokenRow(TrainingBatch batch, int s)
    {
        int real = 0;
        for (int i = 0; i < batch.Length; i++) real += batch.AttentionMask[s * batch.Length + i];
        if (real == 0) throw new ArgumentException($"sequence {s} of the batch has no real token (its attention_mask is all 0)");
        return s * batch.Length + real - 1;
    }

    private static int Pairs(TrainingBatch batch) =>
        batch.Batch % 2 == 0 && batch.Batch > 0
            ? batch.Batch / 2
            : throw new ArgumentException($"a pairwise batch holds n chosen then n rejected sequences; got {batch.Batch} sequences");

    internal static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>log σ(x) without overflow.</summary>
    internal static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));
}

/// <summary>The value head's scores of a pairwise batch: per pair, and the batch's mean loss and accuracy.</summary>
public sealed record PairScores(double[] Chosen, double[] Rejected, double Loss, double Accuracy)
{
    public static PairScores Of(double[] scores, int pairs)
    {
        double[] chosen = scores[..pairs], rejected = scores[pairs..(2 * pairs)];
        double loss = 0;
        int right = 0;
        for (int p = 0; p < pairs; p++)
        {
            loss += -PairwiseRewardLoss.LogSigmoid(chosen[p] - rejected[p]);
            if (chosen[p] > rejected[p]) right++;
        }
        return new PairScores(chosen, rejected, loss / pairs, (double)right / pairs);
    }

    /// <summary>The loss as the trainer accumulates it: the sum over pairs, and the pairs it covers.</summary>
    public LossResult AsLoss => new(Loss * Chosen.Length, Chosen.Length);
}
