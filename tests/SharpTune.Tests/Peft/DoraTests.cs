using System.Text.Json;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Peft;

/// <summary>DoRA (use_dora) against PEFT's references in tests/fixtures/peft_methods/dora.</summary>
[Collection(CliCollection.Name)]
public sealed class DoraTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("dora");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static string Fixture => TestPaths.Fixtures("peft_methods", "dora");

    /// <summary>The fixture's batch (reference.json's "batch") as check grad reads it, and as a training batch.</summary>
    internal static (string Json, TrainingBatch Batch, double Loss) Reference(string fixture)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture, "reference.json")));
        var batch = doc.RootElement.GetProperty("batch");
        int[][] Matrix(string key) => batch.GetProperty(key).EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        int[][] ids = Matrix("input_ids"), mask = Matrix("attention_mask"), labels = Matrix("labels");
        var training = new TrainingBatch(ids.Length, ids[0].Length, ids.SelectMany(r => r).ToArray(), mask.SelectMany(r => r).ToArray(), labels.SelectMany(r => r).ToArray());
        return (batch.GetRawText(), training, doc.RootElement.GetProperty("loss").GetDouble());
    }

    /// <summary>‖actual − expected‖ ≤ tolerance · ‖expected‖ for one tensor (the issue's gradient measure).</summary>
    internal static void AssertRelativeL2(string name, float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += Math.Pow((double)actual[i] - expected[i], 2);
            norm += (double)expected[i] * expected[i];
        }
        Assert.True(Math.Sqrt(diff) <= tolerance * Math.Sqrt(norm), $"{name}: relative L2 error {Math.Sqrt(diff / norm):E3} > {tolerance:E0}");
    }

    [Fact]
    public void CheckGradOnTheDoraFixtureMatchesPeft()
    {
        var (json, _, loss) = Reference(Fixture);
        string input = Path.Combine(_dir, "batch.json"), output = Path.Combine(_dir, "grad.safetensors");
        File.WriteAllText(input, json);

        var r = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture, "--input", input, "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var tensors = TrainingFixtures.Read(output);
        Assert.True(Math.Abs(tensors["loss"].Single() - loss) <= 1e-5 * loss, $"loss {tensors["loss"].Single()}, PEFT {loss}");
        var expected = TrainingFixtures.Read(Path.Combine(Fixture, "grads.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.Contains(expected.Keys, k => k.EndsWith("lora_magnitude_vector", StringComparison.Ordinal));
        foreach (var (name, grad) in expected) AssertRelativeL2(name, grad, tensors[name], 1e-4);
    }

    [Fact]
    public void CheckMergeOfTheDoraFixtureMatchesPeftsMergedProjections()
    {
        string output = Path.Combine(_dir, "merged");

        var r = CliRunner.Run("check", "merge", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture, "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var merged = TrainingFixtures.Read(Path.Combine(output, "model.safetensors"));
        var expected = TrainingFixtures.Read(Path.Combine(Fixture, "merged_projections.safetensors"));
        var original = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors"));
        Assert.Equal(21, expected.Count);
        foreach (var (name, weight) in expected)
        {
            Assert.NotEqual(original[name], merged[name]);
            TrainingFixtures.AssertClose(name, weight, merged[name], 1e-6, 0);
        }
        foreach (string name in original.Keys.Except(expected.Keys)) Assert.Equal(original[name], merged[name]);
    }

    [Fact]
    public void UnmergedServingEqualsTheMergedModel()
    {
        var fx = new Model.ReferenceFixture("qwen2-small-vocab");
        string merged = Path.Combine(_dir, "merged-serving");
        var r = CliRunner.Run("check", "merge", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture, "--out", merged);
        Assert.True(r.ExitCode == 0, r.Stderr);

        using var adapted = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [Fixture]);
        using var plain = DecoderModel.LoadForGeneration(merged);
        var (_, unmergedLogits) = adapted.Evaluate(fx.InputIds, fx.AttentionMask);
        var (_, mergedLogits) = plain.Evaluate(fx.InputIds, fx.AttentionMask);

        Assert.Contains("DoRA modules", adapted.Adapters.Single().Describe());
        TrainingFixtures.AssertClose("logits", mergedLogits, unmergedLogits, 1e-4, 1e-4);
    }

    [Fact]
    public void SavedAdapterLoadsBackWithTheSameLossAndPeftsKeys()
    {
        var (_, batch, loss) = Reference(Fixture);
        string saved = Path.Combine(_dir, "saved");
        using (var model = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), Fixture))
        {
            Assert.Equal(loss, model.Evaluate(batch).Mean, 1e-5 * loss);
            model.Save(saved);
        }
        Assert.Equal(TrainingFixtures.Read(Path.Combine(Fixture, "adapter_model.safetensors")), TrainingFixtures.Read(Path.Combine(saved, "adapter_model.safetensors")));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved, "adapter_config.json"))))
            Assert.True(config.RootElement.GetProperty("use_dora").GetBoolean());
        using var reloaded = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), saved);
        Assert.Equal(loss, reloaded.Evaluate(batch).Mean, 1e-5 * loss);
    }

    [Fact]
    public void GradientCheckpointingGivesTheSameGradients()
    {
        var (_, batch, _) = Reference(Fixture);
        float[][] Gradients(bool checkpointing)
        {
            using var model = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: checkpointing), Fixture);
            model.ForwardBackward(batch, 1f, new SeededRandom(0));
            return model.TrainableParameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        }
        var plain = Gradients(false);
        var recomputed = Gradients(true);
        for (int i = 0; i < plain.Length; i++) TrainingFixtures.AssertClose($"grad {i}", plain[i], recomputed[i], 1e-6, 1e-5);
    }

    [Fact]
    public void TheNormFollowsAnOptimizerStepAndMergeUnmergeRoundTrips()
    {
        var (_, batch, _) = Reference(Fixture);
        using var model = (LoraFineTuning)PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), Fixture);
        double before = model.Evaluate(batch).Mean;
        // Changing B must change the output through the norm too: the loss equals that of a model loaded fresh with the new B.
        var dora = Assert.IsType<DoraLayer>(model.Tuners[0]);
        for (int i = 0; i < dora.Lora.B.Data.Length; i++) dora.Lora.B.Data[i] += 0.05f * MathF.Sin(i);
        double after = model.Evaluate(batch).Mean;
        Assert.NotEqual(before, after);
        string changed = Path.Combine(_dir, "changed");
        model.Save(changed);
        using (var fresh = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), changed))
            Assert.Equal(after, fresh.Evaluate(batch).Mean, 1e-12);

        var weight = Enumerable.Range(0, dora.OutFeatures * dora.InFeatures).Select(i => MathF.Cos(i) * 0.1f).ToArray();
        var copy = (float[])weight.Clone();
        dora.MergeInto(weight, null);
        Assert.NotEqual(copy, weight);
        dora.UnmergeFrom(weight, null);
        TrainingFixtures.AssertClose("unmerged", copy, weight, 1e-6, 1e-5);
    }

    /// <summary>
    /// On a 4-bit base (whose products dequantise W tile by tile) the norm is taken over the dequantised W, as PEFT's
    /// dequantize_module_weight does: the loss is the one of a float32 base holding exactly those dequantised values.
    /// </summary>
    [Fact]
    public void OnAQuantizedBaseTheNormUsesTheDequantizedWeight()
    {
        var (_, batch, loss) = Reference(Fixture);
        using var quantized = PeftAdapterFolders.ResumeTraining(
            DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false, new SharpTune.Quantization.QuantizationOptions(4)), Fixture);
        string dequantized = Path.Combine(_dir, "dequantized");
        Directory.CreateDirectory(dequantized);
        foreach (string file in new[] { "config.json", "generation_config.json" })
            File.Copy(Path.Combine(TrainingFixtures.BaseModel, file), Path.Combine(dequantized, file));
        var decoder = ((LoraFineTuning)quantized).Decoder;
        var tensors = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors"));
        foreach (var linear in decoder.Linears)
        {
            var weight = new float[linear.OutFeatures * linear.InFeatures];
            linear.Base.ReadWeightRows(0, linear.OutFeatures, weight);
            tensors[linear.ModulePath + ".weight"] = weight;
        }
        using (var original = SharpTune.IO.Safetensors.SafetensorsFile.Open(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors")))
            SharpTune.IO.Safetensors.SafetensorsWriter.Write(Path.Combine(dequantized, "model.safetensors"),
                original.Tensors.Select(t => (t.Name, t.Shape, tensors[t.Name])).ToList());
        using var widened = PeftAdapterFolders.ResumeTraining(DecoderModel.Load(dequantized, gradientCheckpointing: false), Fixture);

        double quantizedLoss = quantized.Evaluate(batch).Mean;
        Assert.Equal(widened.Evaluate(batch).Mean, quantizedLoss, 1e-5);
        Assert.True(Math.Abs(quantizedLoss - loss) < 0.05 * loss, $"4-bit loss {quantizedLoss} far from {loss}");
        quantized.ForwardBackward(batch, 1f, new SeededRandom(0));
        Assert.All(quantized.TrainableParameters, p => Assert.True(p.Grad.All(float.IsFinite) && p.Grad.Any(g => g != 0), p.Name));
    }

    /// <summary>
    /// With lora_dropout the base term takes the dropped-out input, as PEFT's DoRA does in training: the gradients of
    /// the input and of the magnitude (on which the detached norm does not depend) equal central differences of a
    /// recomputing pass, which reuses the training pass's mask; the loss is Σ c·y for fixed c.
    /// </summary>
    [Fact]
    public void WithDropoutTheInputAndMagnitudeGradientsMatchFiniteDifferences()
    {
        const int inFeatures = 6, outFeatures = 5, rank = 2, rows = 3;
        var backend = CpuBackend.CreateDefault();
        float[] Values(int count, int seed) => Enumerable.Range(0, count).Select(i => MathF.Sin(seed * 7.1f + i * 1.3f)).ToArray();
        var weight = new ModelTensor("w", [outFeatures, inFeatures], Values(outFeatures * inFeatures, 1));
        var bias = new ModelTensor("b", [outFeatures], Values(outFeatures, 2));
        var lora = new LoraLayer("m", rank, inFeatures, outFeatures, 1.5f, 0.4f, Values(rank * inFeatures, 3), Values(outFeatures * rank, 4), backend);
        var dora = new DoraLayer(lora, Values(outFeatures, 5).Select(v => 1 + Math.Abs(v)).ToArray(), backend);
        dora.AttachTo(new BaseLinear(weight, bias, backend), []);
        float[] x = Values(rows * inFeatures, 6), c = Values(rows * outFeatures, 7);
        double Loss(TunerPass pass, SeededRandom? random)
        {
            var input = backend.FromHost(x, rows, inFeatures);
            var y = backend.Allocate(rows, outFeatures);
            backend.Linear(input, rows, weight.Data, inFeatures, outFeatures, bias.Data, y);
            dora.Forward(input, rows, y, pass, random);
            return backend.ToHost(y).Select((v, i) => (double)v * c[i]).Sum();
        }
        Loss(TunerPass.Train, new SeededRandom(3));
        var (input, dy, dInput) = (backend.FromHost(x, rows, inFeatures), backend.FromHost(c, rows, outFeatures), backend.Allocate(rows, inFeatures));
        dora.Backward(input, dy, rows, dInput);
        backend.LinearBackward(input, dy, rows, weight.Data, inFeatures, outFeatures, null, null, dInput, accumulate: true);
        var dx = backend.ToHost(dInput);
        Assert.Contains(backend.ToHost(lora.DropoutMask).Take(rows * inFeatures), v => v == 0);

        void AssertDerivative(string name, float[] values, int index, double analytic)
        {
            const float h = 1e-2f;
            float saved = values[index];
            values[index] = saved + h;
            double plus = Loss(TunerPass.Recompute, null);
            values[index] = saved - h;
            double minus = Loss(TunerPass.Recompute, null);
            values[index] = saved;
            double numeric = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 * (1 + Math.Abs(numeric)), $"{name}[{index}]: finite difference {numeric}, gradient {analytic}");
        }
        for (int i = 0; i < x.Length; i++) AssertDerivative("x", x, i, dx[i]);
        for (int o = 0; o < outFeatures; o++) AssertDerivative("m", dora.Magnitude.Data, o, dora.Magnitude.Grad[o]);
    }

    [Fact]
    public void DoraStackedOnAnotherAdapterIsRefusedAndChangesNothing()
    {
        var fx = new Model.ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [LoraTestFolders.Adapter]);
        var (_, before) = model.Evaluate(fx.InputIds, fx.AttentionMask);

        var e = Assert.Throws<InvalidOperationException>(() => model.LoadAdapter(Fixture));

        Assert.Contains("a DoRA adapter cannot be stacked unmerged on another adapter", e.Message);
        Assert.Single(model.Adapters);
        Assert.Equal(before, model.Evaluate(fx.InputIds, fx.AttentionMask).Logits);
    }

    [Fact]
    public void AMagnitudeVectorWithoutUseDoraIsRefused()
    {
        string folder = Path.Combine(_dir, "no-dora-flag");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Fixture, "adapter_model.safetensors"), Path.Combine(folder, "adapter_model.safetensors"));
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), File.ReadAllText(Path.Combine(Fixture, "adapter_config.json")).Replace("\"use_dora\": true", "\"use_dora\": false"));

        var e = Assert.Throws<InvalidDataException>(() => PeftAdapterFolders.Read(folder));

        Assert.Contains("lora_magnitude_vector' is a DoRA magnitude vector but adapter_config.json has use_dora: false", e.Message);
    }
}
