using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Tests.Cli;
using SharpTune.Model;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Tests.Training;

/// <summary>
/// The reward model (stage rm) against ../shared/fixtures/preference/reward_model: the value head's scores, the
/// pairwise loss and the gradients of the LoRA adapter and the value head, computed in float64 by the fixture's
/// generator as LLaMA-Factory's PairwiseTrainer does.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class RewardModelTests : IDisposable
{
    private static string Fixture(params string[] parts) => TestPaths.Fixtures(["preference", "reward_model", .. parts]);

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharptune-rm-" + Guid.NewGuid().ToString("N"));

    public RewardModelTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, true);

    private static JsonNode Reference => JsonNode.Parse(File.ReadAllText(Fixture("reference.json")))!;

    private string WriteBatch()
    {
        string path = Path.Combine(_dir, "batch.json");
        File.WriteAllText(path, Reference["batch"]!.ToJsonString());
        return path;
    }

    [Fact]
    public void Check_pref_rm_matches_the_reference_loss_scores_and_gradients()
    {
        string output = Path.Combine(_dir, "rm.safetensors");
        var result = CliRunner.Run("check", "pref", "--stage", "rm", "--model", TrainingFixtures.BaseModel, "--adapter", TrainingFixtures.LoraAdapter,
            "--value-head", Fixture("value_head.safetensors"), "--input", WriteBatch(), "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        var reference = Reference;
        AssertRelative("loss", [reference["loss"]!.GetValue<double>()], tensors["loss"], 1e-5);
        AssertRelative("chosen_scores", Doubles(reference["chosen_scores"]!), tensors["chosen_scores"], 1e-5);
        AssertRelative("rejected_scores", Doubles(reference["rejected_scores"]!), tensors["rejected_scores"], 1e-5);

        var grads = TrainingFixtures.Read(Fixture("grads.safetensors"));
        Assert.Contains("grad.v_head.summary.weight", grads.Keys);
        Assert.Contains("grad.v_head.summary.bias", grads.Keys);
        Assert.Equal(grads.Keys.Order(), tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).Order());
        foreach (var (name, expected) in grads)
        {
            double diff = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                diff += Math.Pow(tensors[name][i] - (double)expected[i], 2);
                norm += Math.Pow(expected[i], 2);
            }
            // The bias cancels in s_chosen − s_rejected, so its gradient is zero and the reference holds float64
            // round-off (5.6e-17): an absolute floor far below any real gradient here keeps that one comparable.
            Assert.True(Math.Sqrt(diff) <= 1e-4 * Math.Sqrt(norm) + 1e-9, $"{name}: L2 error {Math.Sqrt(diff):E3} against a norm of {Math.Sqrt(norm):E3}");
        }
    }

    [Fact]
    public void A_value_head_with_the_wrong_hidden_size_is_refused_naming_the_file_and_tensor()
    {
        string head = Path.Combine(_dir, "value_head.safetensors");
        SharpTune.IO.Safetensors.SafetensorsWriter.Write(head, [(ValueHead.WeightName, new long[] { 1, 7 }, new float[7]), (ValueHead.BiasName, new long[] { 1 }, new float[1])]);
        var error = Assert.Throws<InvalidDataException>(() => ValueHead.Load(head, 48));
        Assert.Contains(head, error.Message);
        Assert.Contains("'v_head.summary.weight' has shape [1, 7]; this model needs [1, 48]", error.Message);
    }

    [Fact]
    public void Saved_value_head_loads_back_with_trl_names()
    {
        var head = ValueHead.CreateNew(48, new SeededRandom(3));
        head.Save(_dir);
        var loaded = ValueHead.Load(_dir, 48);
        Assert.Equal(head.Weight.Data, loaded.Weight.Data);
        Assert.Equal(head.Bias.Data, loaded.Bias.Data);
        using var file = SharpTune.IO.Safetensors.SafetensorsFile.Open(Path.Combine(_dir, ValueHead.FileName));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.All(head.Weight.Data, w => Assert.InRange(w, -1 / Math.Sqrt(48), 1 / Math.Sqrt(48)));
    }

    [Fact]
    public void Pairwise_gradient_matches_finite_differences_of_the_loss_in_the_value_head()
    {
        // Hidden states of 2 pairs over 3 positions (the second rejected sequence right-padded by one).
        var random = new SeededRandom(11);
        const int h = 5, t = 3;
        var batch = new TrainingBatch(4, t, new int[4 * t], [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0], Enumerable.Repeat(-100, 4 * t).ToArray());
        var hidden = Enumerable.Range(0, 4 * t * h).Select(_ => (float)random.NextGaussian()).ToArray();
        var head = ValueHead.CreateNew(h, random);
        var dHidden = new float[hidden.Length];
        var loss = new PairwiseRewardLoss(head, dropout: null);
        loss.Apply(batch, hidden, 1f, dHidden);
        double Loss() => PairwiseRewardLoss.Evaluate(head, batch, hidden).Loss;
        Assert.Equal(Loss(), loss.Last!.Loss, 12);
        const float eps = 1e-3f;
        for (int i = 0; i < h; i++)
        {
            float w = head.Weight.Data[i];
            head.Weight.Data[i] = w + eps; double up = Loss();
            head.Weight.Data[i] = w - eps; double down = Loss();
            head.Weight.Data[i] = w;
            Assert.Equal((up - down) / (2 * eps), head.Weight.Grad[i], 3);
        }
        // Only the last real token of each sequence gets a gradient: rows 2, 4 (padded), 8 and 10.
        int[] scored = [2, 4, 8, 10];
        for (int row = 0; row < 4 * t; row++)
            Assert.Equal(scored.Contains(row), dHidden.AsSpan(row * h, h).ToArray().Any(v => v != 0));
    }

    [Fact]
    public void A_value_head_loss_beside_a_log_probs_first_objective_adds_both_gradients()
    {
        // The decoder's single-pass shortcut for log-probs-first objectives scales whole hidden-gradient rows, so with a
        // hidden-state objective on the same rows (PPO's values sit on the label rows) it must take the second pass:
        // the gradients of both together are the sum of each alone.
        using var model = SharpTune.Peft.Lora.LoraFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), TrainingFixtures.LoraAdapter);
        var decoder = model.Decoder;
        var head = ValueHead.Load(Fixture("value_head.safetensors"), decoder.Config.HiddenSize);
        var batch = TrainingFixtures.Batch();
        batch = new TrainingBatch(2, batch.Length, batch.InputIds[..(2 * batch.Length)], batch.AttentionMask[..(2 * batch.Length)], batch.Labels[..(2 * batch.Length)]);
        var parameters = model.TrainableParameters.Concat(head.Parameters).ToList();
        float[][] Gradients(bool hidden, bool tokens)
        {
            foreach (var p in parameters) p.ZeroGrad();
            if (hidden) decoder.ForwardBackward(batch, new ValuesAtLabelRows(head), tokens ? new LogProbsFirstCrossEntropy() : null, 1f, new SeededRandom(0));
            else decoder.ForwardBackward(batch, new LogProbsFirstCrossEntropy(), 1f, new SeededRandom(0));
            return parameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        }
        var both = Gradients(hidden: true, tokens: true);
        var valueHeadAlone = Gradients(hidden: true, tokens: false);
        var tokensAlone = Gradients(hidden: false, tokens: true);
        for (int i = 0; i < parameters.Count; i++)
        {
            var sum = valueHeadAlone[i].Zip(tokensAlone[i], (a, b) => a + b).ToArray();
            double scale = sum.Max(v => Math.Abs(v));
            TrainingFixtures.AssertClose(parameters[i].Name, sum, both[i], 1e-6 + 1e-5 * scale, 1e-4);
        }
    }

    /// <summary>The sum of the value head's scores at every label row: a hidden-state loss on the token objective's rows.</summary>
    private sealed class ValuesAtLabelRows(ValueHead head) : IHiddenStateObjective
    {
        public void Apply(TrainingBatch batch, ReadOnlySpan<float> hidden, float gradScale, Span<float> dHidden)
        {
            int h = head.HiddenSize;
            foreach (int row in LabelTokens.Of(batch).Rows)
                head.Backward(hidden.Slice(row * h, h), gradScale, dHidden.Slice(row * h, h));
        }
    }

    /// <summary>SFT's loss asking for the log-probs first, as the preference objectives do.</summary>
    private sealed class LogProbsFirstCrossEntropy : ITrainingObjective
    {
        private readonly SupervisedCrossEntropy _inner = new();

        public bool NeedsLogProbsFirst => true;

        public void Begin(LabelTokens labels, float gradScale) => _inner.Begin(labels, gradScale);

        public float Gradient(int token, double logProb) => _inner.Gradient(token, logProb);

        public SharpTune.Training.LossResult Loss(ReadOnlySpan<double> logProbs) => _inner.Loss(logProbs);
    }

    private static double[] Doubles(JsonNode node) => node.AsArray().Select(v => v!.GetValue<double>()).ToArray();

    private static void AssertRelative(string name, double[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance * Math.Abs(expected[i]), $"{name}[{i}]: expected {expected[i]}, got {actual[i]}");
    }
}
