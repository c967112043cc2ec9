using System.Text.Json;
using SharpTune.Data;
using SharpTune.Training.Objectives;
using SharpTune.Training.Preference;

namespace SharpTune.Tests.Preference;

/// <summary>
/// Each pref_loss and KTO as objectives, on the fixtures' float64 log-probs (no model): the loss and rewards to 1e-9
/// relative, and every sequence's gradient against a central finite difference of the loss.
/// </summary>
public sealed class PreferenceObjectiveTests
{
    public static TheoryData<string> DpoCases => new(PreferenceFixtures.DpoCases.Select(c => c.GetProperty("case").GetString()!));

    private static TrainingBatch Half(JsonElement batch, string prefix)
    {
        int[][] M(string key) => batch.GetProperty(prefix + key).EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        var ids = M("input_ids");
        return new TrainingBatch(ids.Length, ids[0].Length, ids.SelectMany(r => r).ToArray(), M("attention_mask").SelectMany(r => r).ToArray(), M("labels").SelectMany(r => r).ToArray());
    }

    /// <summary>Per-token log-probs whose sum per sequence is the given one (all of it on the sequence's first label token).</summary>
    private static double[] TokensSumming(LabelTokens labels, double[] sums)
    {
        var perToken = new double[labels.Count];
        var seen = new bool[sums.Length];
        for (int i = 0; i < labels.Count; i++)
        {
            int s = labels.Sequences[i];
            if (!seen[s]) perToken[i] = sums[s];
            seen[s] = true;
        }
        return perToken;
    }

    private static (double Loss, float[] Gradients, PairOutcome Outcome) Run(PairLoss loss, double ftx, double[]? reference, LabelTokens labels, double[] sums)
    {
        var objective = new PairwiseObjective(loss, ftx, reference);
        objective.Begin(labels, 1f);
        var perToken = TokensSumming(labels, sums);
        objective.Observe(perToken, new double[labels.Count]);
        var firstTokens = Enumerable.Range(0, sums.Length).Select(s => Array.IndexOf(labels.Sequences, s)).ToArray();
        return (objective.Loss(perToken).Mean, firstTokens.Select(i => objective.Gradient(i, perToken[i])).ToArray(), objective.Outcome!);
    }

    [Theory]
    [MemberData(nameof(DpoCases))]
    public void Pair_loss_matches_the_fixture_and_its_gradient_the_finite_difference(string name)
    {
        var c = PreferenceFixtures.DpoCase(name);
        var r = PreferenceFixtures.DpoReference;
        var batch = PairwiseStep.Concatenate(Half(r.GetProperty("batch"), "chosen_"), Half(r.GetProperty("batch"), "rejected_"), 0);
        var labels = LabelTokens.Of(batch);
        Assert.Equal(PreferenceFixtures.Doubles(r, "chosen_label_tokens").Concat(PreferenceFixtures.Doubles(r, "rejected_label_tokens")),
            labels.CountPerSequence.Select(v => (double)v));
        double gamma = c.GetProperty("simpo_gamma").ValueKind == JsonValueKind.Number ? c.GetProperty("simpo_gamma").GetDouble() : 0.5;
        var loss = PairLoss.Create(c.GetProperty("pref_loss").GetString()!, c.GetProperty("pref_beta").GetDouble(),
            c.GetProperty("dpo_label_smoothing").GetDouble(), gamma);
        double ftx = c.GetProperty("pref_ftx").GetDouble();
        double[] policy = [.. PreferenceFixtures.Doubles(c, "policy_chosen_logps"), .. PreferenceFixtures.Doubles(c, "policy_rejected_logps")];
        double[] reference = [.. PreferenceFixtures.Doubles(r, "reference_chosen_logps"), .. PreferenceFixtures.Doubles(r, "reference_rejected_logps")];

        var (value, gradients, outcome) = Run(loss, ftx, loss.NeedsReference ? reference : null, labels, policy);

        Assert.Equal(c.GetProperty("loss").GetDouble(), value, 1e-9 * Math.Abs(value));
        AssertAll("rewards_chosen", PreferenceFixtures.Doubles(c, "rewards_chosen"), outcome.RewardsChosen);
        AssertAll("rewards_rejected", PreferenceFixtures.Doubles(c, "rewards_rejected"), outcome.RewardsRejected);
        Assert.Equal(c.GetProperty("rewards_accuracies").GetDouble(), outcome.RewardsChosen.Zip(outcome.RewardsRejected).Count(p => p.First > p.Second) / 3.0, 1e-12);
        for (int s = 0; s < policy.Length; s++)
        {
            const double h = 1e-4;
            double[] up = (double[])policy.Clone(), down = (double[])policy.Clone();
            up[s] += h;
            down[s] -= h;
            double numeric = (Run(loss, ftx, loss.NeedsReference ? reference : null, labels, up).Loss
                - Run(loss, ftx, loss.NeedsReference ? reference : null, labels, down).Loss) / (2 * h);
            Assert.True(Math.Abs(gradients[s] - numeric) <= 1e-6 + 1e-4 * Math.Abs(numeric), $"sequence {s}: gradient {gradients[s]}, finite difference {numeric}");
        }
    }

    private static void AssertAll(string name, double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-9 * Math.Abs(expected[i]) + 1e-12, $"{name}[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Hinge_and_ipo_are_not_sigmoid()
    {
        double[] policy = [-10, -12], reference = [-11, -11];
        double sigmoid = PairLoss.Create("sigmoid", 0.1).Compute(policy[0], policy[1], reference[0], reference[1]).Loss;
        Assert.Equal(Math.Max(0, 1 - 0.1 * 2), PairLoss.Create("hinge", 0.1).Compute(policy[0], policy[1], reference[0], reference[1]).Loss, 1e-12);
        Assert.Equal(Math.Pow(2 - 1 / 0.2, 2), PairLoss.Create("ipo", 0.1).Compute(policy[0], policy[1], reference[0], reference[1]).Loss, 1e-12);
        Assert.NotEqual(sigmoid, PairLoss.Create("hinge", 0.1).Compute(policy[0], policy[1], reference[0], reference[1]).Loss, 6);
    }

    private static (double Loss, float[] Gradients, KtoOutcome Outcome) RunKto(JsonElement r, LabelTokens labels, bool[] tags, double[] sums, double kl)
    {
        var objective = new KtoObjective(r.GetProperty("pref_beta").GetDouble(), r.GetProperty("kto_chosen_weight").GetDouble(),
            r.GetProperty("kto_rejected_weight").GetDouble(), 0, tags, PreferenceFixtures.Doubles(r, "reference_logps"), kl);
        objective.Begin(labels, 1f);
        var perToken = TokensSumming(labels, sums);
        objective.Observe(perToken, new double[labels.Count]);
        var firstTokens = Enumerable.Range(0, sums.Length).Select(s => Array.IndexOf(labels.Sequences, s)).ToArray();
        return (objective.Loss(perToken).Mean, firstTokens.Select(i => objective.Gradient(i, perToken[i])).ToArray(), objective.Outcome!);
    }

    [Fact]
    public void Kto_loss_matches_the_fixture_and_its_gradient_the_finite_difference()
    {
        var r = PreferenceFixtures.KtoReference;
        var batch = Half(r.GetProperty("batch"), "");
        var labels = LabelTokens.Of(batch);
        var tags = r.GetProperty("batch").GetProperty("kto_tags").EnumerateArray().Select(t => t.GetBoolean()).ToArray();
        double kl = r.GetProperty("kl").GetDouble();
        var policy = PreferenceFixtures.Doubles(r, "policy_logps");

        var (loss, gradients, _) = RunKto(r, labels, tags, policy, kl);

        Assert.Equal(r.GetProperty("loss").GetDouble(), loss, 1e-9 * loss);
        for (int s = 0; s < policy.Length; s++)
        {
            const double h = 1e-4;
            double[] up = (double[])policy.Clone(), down = (double[])policy.Clone();
            up[s] += h;
            down[s] -= h;
            double numeric = (RunKto(r, labels, tags, up, kl).Loss - RunKto(r, labels, tags, down, kl).Loss) / (2 * h);
            Assert.True(Math.Abs(gradients[s] - numeric) <= 1e-7 + 1e-4 * Math.Abs(numeric), $"example {s}: gradient {gradients[s]}, finite difference {numeric}");
        }
    }

    [Fact]
    public void Kl_estimate_is_clamped_at_zero()
    {
        Assert.Equal(0.5, KtoObjective.KlEstimate([-1.0, -2.0], [-1.5, -2.5]), 12);
        Assert.Equal(0, KtoObjective.KlEstimate([-2.0], [-1.0]));
    }
}

/// <summary>
/// The decoder's log-probs-first passes: with a trained lm_head (full tuning) the gradients come from a second pass
/// over the label chunks. At the starting point the policy is its own reference, Δ = 0, and sigmoid's gradient is
/// −β/2 per pair on π_c and +β/2 on π_r (over the pair count): a plain per-token objective with those constants,
/// which the decoder runs in its single pass, must give the same gradients for every weight, lm_head included.
/// </summary>
public sealed class LogProbsFirstPassTests
{
    private sealed class ConstantPerSequence(float[] perSequence) : ITrainingObjective
    {
        private LabelTokens? _labels;

        public void Begin(LabelTokens labels, float gradScale) => _labels = labels;

        public float Gradient(int token, double logProb) => perSequence[_labels!.Sequences[token]];

        public SharpTune.Training.LossResult Loss(ReadOnlySpan<double> logProbs) => new(0, logProbs.Length);
    }

    [Fact]
    public void A_trained_lm_head_gets_the_same_gradients_from_the_second_pass()
    {
        var r = PreferenceFixtures.DpoReference;
        TrainingBatch Half(string prefix)
        {
            int[][] M(string key) => r.GetProperty("batch").GetProperty(prefix + key).EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
            var ids = M("input_ids");
            return new TrainingBatch(ids.Length, ids[0].Length, ids.SelectMany(x => x).ToArray(), M("attention_mask").SelectMany(x => x).ToArray(), M("labels").SelectMany(x => x).ToArray());
        }
        var pairs = PairwiseStep.Concatenate(Half("chosen_"), Half("rejected_"), 0);

        float[][] Gradients(Action<SharpTune.Training.Model.DecoderModel> run)
        {
            using var model = SharpTune.FineTuning.WeightsFineTuning.Full(
                SharpTune.Training.Model.DecoderModel.Load(Training.TrainingFixtures.BaseModel, gradientCheckpointing: false));
            Assert.True(model.Decoder.LmHead.IsTrainable);
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            run(model.Decoder);
            return model.TrainableParameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        }

        var dpo = Gradients(decoder =>
        {
            using var reference = ReferenceModel.Separate(SharpTune.Training.Model.DecoderModel.Load(Training.TrainingFixtures.BaseModel, gradientCheckpointing: true));
            new PairwiseStep(decoder, reference, PairLoss.Create("sigmoid", 0.1), 0).Train(pairs, 1f, new SeededRandom(0));
        });
        const float half = 0.1f / 2 / 3;
        var constant = Gradients(decoder => decoder.ForwardBackward(pairs, new ConstantPerSequence([-half, -half, -half, half, half, half]), 1f, new SeededRandom(0)));

        for (int i = 0; i < dpo.Length; i++)
        {
            double scale = constant[i].Max(v => Math.Abs(v));
            Assert.True(scale > 0);
            Training.TrainingFixtures.AssertClose($"parameter {i}", constant[i], dpo[i], 1e-6 * scale, 1e-4);
        }
    }
}
