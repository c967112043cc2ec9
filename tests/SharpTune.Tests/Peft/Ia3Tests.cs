using System.Text.Json;
using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Peft.Ia3;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Peft;

/// <summary>
/// IA3 (issue 16): the PEFT fixture's loss and gradients through `check grad`, `check merge` against the merge computed
/// here from the base and the vectors, the projection's backward with an output-side IA3 stacked on LoRA against the
/// analytic gradients, and a saved adapter's logits after loading equal to the trained model's.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class Ia3Tests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-ia3-").FullName;

    private static string Fixture => TestPaths.Fixtures("peft_methods", "ia3");

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>The fixture's batch as `check grad --input` reads it.</summary>
    private string WriteBatch()
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture, "reference.json")));
        string path = Path.Combine(_dir, "batch.json");
        File.WriteAllText(path, reference.RootElement.GetProperty("batch").GetRawText());
        return path;
    }

    private static double ReferenceLoss()
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture, "reference.json")));
        return reference.RootElement.GetProperty("loss").GetDouble();
    }

    private static double RelativeL2(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += Math.Pow((double)actual[i] - expected[i], 2);
            norm += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void Check_grad_matches_peft_loss_and_gradients()
    {
        string output = Path.Combine(_dir, "ia3.safetensors");
        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture, "--input", WriteBatch(), "--out", output);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        double loss = tensors["loss"].Single();
        Assert.True(Math.Abs(loss - ReferenceLoss()) <= 1e-5 * ReferenceLoss(), $"loss {loss}, PEFT's {ReferenceLoss()}");
        var expected = TrainingFixtures.Read(Path.Combine(Fixture, "grads.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        foreach (var (name, grad) in expected)
        {
            double error = RelativeL2(grad, tensors[name]);
            Assert.True(error <= 1e-4, $"{name}: relative L2 error {error:E3}");
        }
    }

    [Fact]
    public void Check_merge_scales_rows_and_bias_of_output_side_modules_and_columns_of_feedforward_ones()
    {
        string merged = Path.Combine(_dir, "merged");
        var result = CliRunner.Run("check", "merge", "--model", TrainingFixtures.BaseModel, "--adapter", Fixture, "--out", merged);
        Assert.True(result.ExitCode == 0, result.Stderr);

        var baseTensors = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors"));
        var vectors = TrainingFixtures.Read(Path.Combine(Fixture, "adapter_model.safetensors"));
        var output = TrainingFixtures.Read(Path.Combine(merged, "model.safetensors"));
        var expected = new Dictionary<string, float[]>(baseTensors);
        int changedModules = 0;
        foreach (var (key, l) in vectors)
        {
            string module = key["base_model.model.".Length..^".ia3_l".Length];
            float[] w = (float[])baseTensors[module + ".weight"].Clone();
            int outFeatures = module.EndsWith("down_proj", StringComparison.Ordinal) ? w.Length / l.Length : l.Length, inFeatures = w.Length / outFeatures;
            for (int o = 0; o < outFeatures; o++)
                for (int i = 0; i < inFeatures; i++)
                    w[o * inFeatures + i] *= module.EndsWith("down_proj", StringComparison.Ordinal) ? l[i] : l[o];
            expected[module + ".weight"] = w;
            if (!module.EndsWith("down_proj", StringComparison.Ordinal) && baseTensors.TryGetValue(module + ".bias", out var bias))
                expected[module + ".bias"] = bias.Select((b, o) => b * l[o]).ToArray();
            changedModules++;
        }
        Assert.Equal(9, changedModules);
        Assert.Equal(expected.Keys.Where(output.ContainsKey).Order(StringComparer.Ordinal), output.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, values) in output)
            TrainingFixtures.AssertClose(name, expected[name], values, 1e-6, 1e-6);
        Assert.NotEqual(baseTensors["model.layers.0.self_attn.q_proj.bias"], output["model.layers.0.self_attn.q_proj.bias"]);
    }

    [Fact]
    public void An_output_side_ia3_after_lora_gives_the_analytic_gradients()
    {
        const int rows = 3, inF = 5, outF = 4, rank = 2;
        const float scaling = 0.5f;
        var backend = CpuBackend.CreateDefault();
        float[] Values(int n, float phase) => Enumerable.Range(0, n).Select(i => MathF.Sin(0.37f * i + phase)).ToArray();
        var w = Values(outF * inF, 0.1f);
        var b = Values(outF, 0.7f);
        var linear = new TrainableLinear("m.q_proj", inF, outF, backend, new ModelTensor("m.q_proj.weight", [outF, inF], w), new ModelTensor("m.q_proj.bias", [outF], b));
        var lora = new LoraLayer("m.q_proj", rank, inF, outF, scaling, 0f, Values(rank * inF, 0.3f), Values(outF * rank, 1.1f), backend);
        var ia3 = new Ia3Layer("m.q_proj", inF, outF, isFeedforward: false, Values(outF, 2.0f).Select(v => 1 + 0.5f * v).ToArray(), backend);
        linear.Tuners.Add(lora);
        linear.Tuners.Add(ia3);
        var x = Values(rows * inF, 0.9f);
        var dy = Values(rows * outF, 1.7f);
        var (input, output, dInput) = (backend.FromHost(x, rows, inF), backend.Allocate(rows, outF), backend.Allocate(rows, inF));
        linear.Forward(input, rows, output, TunerPass.Train, null);
        linear.Backward(input, backend.FromHost(dy, rows, outF), rows, dInput, accumulate: false);
        var (y, dx) = (backend.ToHost(output), backend.ToHost(dInput));

        // y = (W x + b + s·B·A·x) ⊙ l, in double.
        var l = ia3.L.Data;
        var A = lora.A.Data;
        var B = lora.B.Data;
        for (int r = 0; r < rows; r++)
        {
            var ax = new double[rank];
            for (int j = 0; j < rank; j++)
                for (int i = 0; i < inF; i++) ax[j] += (double)A[j * inF + i] * x[r * inF + i];
            var g = new double[outF];
            for (int o = 0; o < outF; o++)
            {
                double pre = b[o];
                for (int i = 0; i < inF; i++) pre += (double)w[o * inF + i] * x[r * inF + i];
                for (int j = 0; j < rank; j++) pre += scaling * (double)B[o * rank + j] * ax[j];
                Assert.Equal(pre * l[o], y[r * outF + o], 1e-5);
                g[o] = dy[r * outF + o] * (double)l[o];
            }
            for (int i = 0; i < inF; i++)
            {
                double expected = 0;
                for (int o = 0; o < outF; o++) expected += g[o] * w[o * inF + i];
                for (int j = 0; j < rank; j++)
                    for (int o = 0; o < outF; o++) expected += scaling * g[o] * B[o * rank + j] * A[j * inF + i];
                Assert.Equal(expected, dx[r * inF + i], 1e-5);
            }
        }
        for (int o = 0; o < outF; o++)
        {
            double expected = 0;
            for (int r = 0; r < rows; r++)
            {
                double pre = b[o];
                for (int i = 0; i < inF; i++) pre += (double)w[o * inF + i] * x[r * inF + i];
                for (int j = 0; j < rank; j++)
                    for (int i = 0; i < inF; i++) pre += scaling * (double)B[o * rank + j] * A[j * inF + i] * x[r * inF + i];
                expected += pre * dy[r * outF + o];
            }
            Assert.Equal(expected, ia3.L.Grad[o], 1e-5);
        }
        for (int o = 0; o < outF; o++)
            for (int j = 0; j < rank; j++)
            {
                double expected = 0;
                for (int r = 0; r < rows; r++)
                {
                    double ax = 0;
                    for (int i = 0; i < inF; i++) ax += (double)A[j * inF + i] * x[r * inF + i];
                    expected += scaling * dy[r * outF + o] * l[o] * ax;
                }
                Assert.Equal(expected, lora.B.Grad[o * rank + j], 1e-5);
            }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unmerge_takes_the_merged_layer_out_of_weight_and_bias_again(bool feedforward)
    {
        const int outF = 3, inF = 4;
        var layer = new Ia3Layer("m.v_proj", inF, outF, feedforward, feedforward ? [0.5f, 2f, -1.5f, 0.75f] : [1.25f, -0.5f, 3f], CpuBackend.CreateDefault());
        var weight = Enumerable.Range(0, outF * inF).Select(i => 0.1f * i - 0.4f).ToArray();
        var bias = new[] { 0.3f, -0.2f, 0.7f };
        var (w, b) = ((float[])weight.Clone(), (float[])bias.Clone());
        layer.MergeInto(w, b);
        for (int o = 0; o < outF; o++)
        {
            for (int i = 0; i < inF; i++) Assert.Equal(weight[o * inF + i] * layer.L.Data[feedforward ? i : o], w[o * inF + i], 6);
            Assert.Equal(feedforward ? bias[o] : bias[o] * layer.L.Data[o], b[o], 6);
        }
        layer.UnmergeFrom(w, b);
        TrainingFixtures.AssertClose("weight", weight, w, 1e-6, 1e-6);
        TrainingFixtures.AssertClose("bias", bias, b, 1e-6, 1e-6);
    }

    [Fact]
    public void Gradient_checkpointing_gives_the_same_loss_and_gradients()
    {
        var batch = TrainingFixtures.Batch();
        float[][] Gradients(bool checkpointing)
        {
            using var model = Ia3FineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: checkpointing), Fixture);
            model.ForwardBackward(batch, 1f, new SeededRandom(1));
            return model.TrainableParameters.Select(p => p.Grad).ToArray();
        }
        var plain = Gradients(false);
        var checkpointed = Gradients(true);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], checkpointed[i]);
    }

    [Fact]
    public void A_saved_adapter_loads_with_the_trained_logits_and_merges_to_them()
    {
        var batch = TrainingFixtures.Batch();
        using var trained = Ia3FineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), Fixture);
        // A step away from the fixture's values, so the saved adapter is SharpTune's own.
        trained.ForwardBackward(batch, 1f, new SeededRandom(1));
        foreach (var p in trained.TrainableParameters)
            for (int i = 0; i < p.Data.Length; i++) p.Data[i] -= 0.5f * p.Grad[i];
        string saved = Path.Combine(_dir, "saved");
        trained.Save(saved);
        Assert.Equal(Ia3Config.PeftType, PeftAdapterFolders.PeftType(saved));

        using (var reloaded = Ia3FineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), saved))
            TunerChecks.AssertReloads(trained, reloaded, batch);

        var withAdapter = TunerChecks.AssertServedUnmerged(trained.Decoder, saved);

        string merged = Path.Combine(_dir, "merged");
        SharpTune.Export.ModelExporter.Export(TrainingFixtures.BaseModel, [saved], merged, long.MaxValue, template: null);
        using var mergedModel = DecoderModel.LoadForGeneration(merged);
        TrainingFixtures.AssertClose("merged logits", withAdapter, TunerChecks.FirstSequenceLogits(mergedModel), 1e-4, 1e-4);
    }
}
