using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Peft.PromptLearning;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Objectives;

namespace SharpTune.Tests.Peft;

/// <summary>
/// Prompt tuning, P-tuning and prefix tuning: PEFT's fixtures through `check grad`, the encoders' gradients against
/// finite differences, save → load → same logits, and generation over the KV cache against full recomputes.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class PromptLearningTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("prompts");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Fixture(string method) => TestPaths.Fixtures("peft_methods", method);

    [Theory]
    [InlineData("prompt_tuning")]
    [InlineData("prefix_tuning")]
    public void CheckGrad_OnPeftsFixture_MatchesItsLossAndGradients(string method)
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture(method), "reference.json")));
        string input = Path.Combine(_dir, "batch.json");
        File.WriteAllText(input, reference.RootElement.GetProperty("batch").GetRawText());
        string output = Path.Combine(_dir, "grads.safetensors");

        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture(method), "--input", input, "--out", output);

        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        double loss = reference.RootElement.GetProperty("loss").GetDouble();
        Assert.True(Math.Abs(tensors["loss"][0] - loss) <= 1e-5 * loss, $"loss {tensors["loss"][0]}, PEFT's {loss}");
        var expected = TrainingFixtures.Read(Path.Combine(Fixture(method), "grads.safetensors"));
        Assert.Equal(["grad.prompt_embeddings"], expected.Keys);
        foreach (var (name, grad) in expected)
            Assert.True(RelativeL2(grad, tensors[name]) <= 1e-4, $"{name}: relative L2 error {RelativeL2(grad, tensors[name]):E3}");
    }

    private static double RelativeL2(float[] expected, float[] actual)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += Math.Pow(actual[i] - (double)expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        return Math.Sqrt(diff / norm);
    }

    /// <summary>The methods' YAML settings, as new tuners on the base model.</summary>
    public static TheoryData<string> Methods => new()
    {
        "prompt_tuning", "p_tuning_mlp", "p_tuning_lstm", "prefix_tuning", "prefix_projection",
    };

    private static FinetuningArguments Arguments(string method) => method switch
    {
        "prompt_tuning" => new() { FinetuningType = FinetuningType.PromptTuning, NumVirtualTokens = 4 },
        "p_tuning_mlp" => new() { FinetuningType = FinetuningType.PTuning, NumVirtualTokens = 4, EncoderHiddenSize = 16 },
        // Two layers with dropout between them: the training pass draws masks, the finite differences run without.
        "p_tuning_lstm" => new() { FinetuningType = FinetuningType.PTuning, NumVirtualTokens = 3, EncoderReparameterizationType = "LSTM", EncoderHiddenSize = 8, EncoderNumLayers = 2 },
        "prefix_tuning" => new() { FinetuningType = FinetuningType.PrefixTuning, NumVirtualTokens = 4 },
        _ => new() { FinetuningType = FinetuningType.PrefixTuning, NumVirtualTokens = 4, PrefixProjection = true, EncoderHiddenSize = 12 },
    };

    private static PromptLearningFineTuning NewModel(string method, bool checkpointing = false) =>
        PromptLearningFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, checkpointing), Arguments(method), new SeededRandom(7), TrainingFixtures.BaseModel);

    [Theory]
    [MemberData(nameof(Methods))]
    public void EveryTrainedTensor_HasTheGradientOfFiniteDifferences(string method)
    {
        using var model = NewModel(method);
        var batch = TrainingFixtures.Batch();
        foreach (var p in model.TrainableParameters) p.ZeroGrad();
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        foreach (var p in model.TrainableParameters)
        {
            // The derivative along the unit direction of the analytic gradient, (L(θ + εv) − L(θ − εv)) / 2ε, against
            // g·v = |g|: the direction with the most signal over float32's rounding of the loss, and a gradient wrong in
            // direction or size gives another value.
            var direction = p.Grad.Select(g => (double)g).ToArray();
            double length = Math.Sqrt(direction.Sum(v => v * v));
            Assert.True(length > 0, $"{method} {p.Name}: no gradient");
            double analytic = 0;
            for (int i = 0; i < p.Length; i++) analytic += p.Grad[i] * direction[i] / length;
            var saved = (float[])p.Data.Clone();
            double Loss(double step)
            {
                for (int i = 0; i < p.Length; i++) p.Data[i] = (float)(saved[i] + step * direction[i] / length);
                return model.Evaluate(batch).Mean;
            }
            // Central differences at several steps: a large step can cross a ReLU's kink (P-tuning's MLP), a small one
            // drowns in float32's rounding of the loss; a right gradient agrees with one of them, a wrong one with none.
            var numeric = new[] { 1e-2, 3e-3, 1e-3, 3e-4 }.Select(e => (Loss(e) - Loss(-e)) / (2 * e)).ToArray();
            saved.CopyTo(p.Data, 0);
            Assert.True(numeric.Any(d => Math.Abs(d - analytic) <= 5e-3 * Math.Abs(analytic)),
                $"{method} {p.Name}: analytic {analytic:E5}, finite differences {string.Join(", ", numeric.Select(d => d.ToString("E5")))}");
        }
    }

    [Theory]
    [InlineData("p_tuning_mlp")]
    [InlineData("prefix_tuning")]
    public void DisabledTuners_GiveTheBaseModelsLogProbs_TheReferenceOfPreferenceObjectives(string method)
    {
        var batch = TrainingFixtures.Batch();
        using var baseModel = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        var expected = baseModel.LogProbs(batch);
        using var model = NewModel(method);
        var tuned = model.Decoder.LogProbs(batch);
        LabelLogProbs reference;
        using (model.Decoder.DisableTuners()) reference = model.Decoder.LogProbs(batch);
        Assert.Equal(expected.PerToken, reference.PerToken);
        Assert.Equal(expected.SumPerSequence, reference.SumPerSequence);
        Assert.NotEqual(expected.SumPerSequence, tuned.SumPerSequence);
        Assert.Equal(expected.Labels.Count, tuned.Labels.Count);
    }

    [Theory]
    [InlineData("prompt_tuning")]
    [InlineData("prefix_projection")]
    public void GradientCheckpointing_GivesTheSameGradients(string method)
    {
        var batch = TrainingFixtures.Batch();
        float[][] Gradients(bool checkpointing)
        {
            using var model = NewModel(method, checkpointing);
            model.ForwardBackward(batch, 1f, new SeededRandom(1));
            return model.TrainableParameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        }
        Assert.Equal(Gradients(false), Gradients(true));
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Saved_ThenLoadedForGeneration_GivesTheTrainingForwardsLogits(string method)
    {
        var f = TrainingFixtures.Base;
        float[] expected;
        string adapter = Path.Combine(_dir, method);
        using (var model = NewModel(method))
        {
            expected = model.Decoder.Logits(TrainingFixtures.Batch());
            model.Save(adapter);
        }
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")));
        Assert.Equal(method.StartsWith("p_tuning", StringComparison.Ordinal) ? "P_TUNING" : method.StartsWith("prefix", StringComparison.Ordinal) ? "PREFIX_TUNING" : "PROMPT_TUNING",
            config.RootElement.GetProperty("peft_type").GetString());

        using var served = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [adapter]);
        var (_, logits) = served.Evaluate(f.InputIds, f.AttentionMask);

        var mask = f.AttentionMask.SelectMany(r => r).ToArray();
        int vocab = served.Config.VocabSize;
        for (int row = 0; row < mask.Length; row++)
            if (mask[row] == 1)
                TrainingFixtures.AssertClose($"{method} row {row}", expected.AsSpan(row * vocab, vocab).ToArray(), logits.AsSpan(row * vocab, vocab).ToArray(), 1e-4, 1e-4);
    }

    [Fact]
    public void PeftsPrefixFolder_Served_GivesTheTrainingForwardsLogits()
    {
        var f = TrainingFixtures.Base;
        using var trained = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        using var resumed = SharpTune.Peft.PeftAdapterFolders.ResumeTraining(trained, Fixture("prefix_tuning"));
        var expected = trained.Logits(TrainingFixtures.Batch());
        using var served = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [Fixture("prefix_tuning")]);
        var (_, logits) = served.Evaluate(f.InputIds, f.AttentionMask);
        // Without the prefix the logits differ, so the comparison sees it.
        using var plain = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        Assert.NotEqual(plain.Evaluate(f.InputIds, f.AttentionMask).Logits[0], logits[0]);
        int vocab = served.Config.VocabSize;
        TrainingFixtures.AssertClose("row 0", expected.AsSpan(0, vocab).ToArray(), logits.AsSpan(0, vocab).ToArray(), 1e-4, 1e-4);
    }

    [Theory]
    [InlineData("prompt_tuning")]
    [InlineData("prefix_tuning")]
    public void GreedyGeneration_OverTheCache_ChoosesWhatFullRecomputesChoose(string method)
    {
        using var model = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [Fixture(method)]);
        // Two prompts of different lengths: the shorter is left-padded between the tuner's entries and its tokens.
        int[][] prompts = [[74, 23, 191, 158, 204, 100], [260, 307, 172]];
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = 8 };
        var results = new BatchGenerator(model).Generate(prompts, options);
        for (int b = 0; b < prompts.Length; b++)
        {
            var sequence = prompts[b].ToList();
            foreach (int chosen in results[b].NewIds)
            {
                var (_, logits) = model.Evaluate([sequence.ToArray()], [Enumerable.Repeat(1, sequence.Count).ToArray()]);
                var last = logits.AsSpan((sequence.Count - 1) * model.Config.VocabSize, model.Config.VocabSize);
                Assert.Equal(LogitsProcessing.ArgMax(last), chosen);
                sequence.Add(chosen);
            }
            Assert.Equal(8, results[b].NewIds.Length);
        }
    }

    [Theory]
    [InlineData("prompt_tuning")]
    [InlineData("prefix_tuning")]
    public void OnAQuantizedBase_TrainsTheTunerAndLeavesTheBaseFrozen(string method)
    {
        var quantization = new SharpTune.Quantization.QuantizationOptions(4);
        SharpTune.FineTuning.TrainableModels.CheckCombination(Arguments(method), [], quantization);
        using var model = PromptLearningFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, false, quantization), Arguments(method),
            new SeededRandom(7), TrainingFixtures.BaseModel);
        var loss = model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        Assert.True(double.IsFinite(loss.Mean));
        Assert.All(model.TrainableParameters, p => Assert.Contains(p.Grad, g => g != 0));
        Assert.All(model.Decoder.Linears, l => Assert.True(l.Weight.IsQuantized && !l.HasTrainable));
    }

    [Fact]
    public void TwoPromptAdapters_AreRefusedWithTheReason()
    {
        using var model = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [Fixture("prompt_tuning")]);
        var e = Assert.Throws<InvalidDataException>(() => model.LoadAdapter(Fixture("prefix_tuning")));
        Assert.Contains("two cannot be applied together", e.Message);
    }

    [Fact]
    public void APromptAdapter_StacksOnALoraAdapter()
    {
        var f = TrainingFixtures.Base;
        using var lora = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [TrainingFixtures.LoraAdapter]);
        using var both = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [TrainingFixtures.LoraAdapter, Fixture("prompt_tuning")]);
        using var trained = DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false);
        trained.LoadAdapter(TrainingFixtures.LoraAdapter);
        trained.LoadAdapter(Fixture("prompt_tuning"));
        var expected = trained.Logits(TrainingFixtures.Batch());
        var logits = both.Evaluate(f.InputIds, f.AttentionMask).Logits;
        Assert.NotEqual(lora.Evaluate(f.InputIds, f.AttentionMask).Logits[0], logits[0]);
        int vocab = both.Config.VocabSize;
        TrainingFixtures.AssertClose("row 0", expected.AsSpan(0, vocab).ToArray(), logits.AsSpan(0, vocab).ToArray(), 1e-4, 1e-4);
    }
}
