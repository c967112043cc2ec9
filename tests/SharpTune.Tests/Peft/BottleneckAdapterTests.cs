using System.Text.Json;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Peft.Bottleneck;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Peft;

/// <summary>
/// Bottleneck (Houlsby) adapters (issue 16): gradients against central finite differences of the loss, the adapters
/// library's folder layout, save → load with the trained logits (training and unmerged serving), `check grad` on a
/// saved folder, and export's refusal naming why.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class BottleneckAdapterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-bottleneck-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static BottleneckFineTuning CreateNew(string nonLinearity = "swish") =>
        BottleneckFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false),
            new FinetuningArguments { FinetuningType = FinetuningType.Adapter, AdapterReductionFactor = 8, AdapterNonLinearity = nonLinearity },
            new SeededRandom(3));

    /// <summary>Values well away from the near-identity init, so the nonlinearity and every product matter.</summary>
    private static void Randomize(ITrainableModel model, ulong seed)
    {
        var random = new SeededRandom(seed);
        foreach (var p in model.TrainableParameters)
            for (int i = 0; i < p.Length; i++) p.Data[i] = (float)(0.3 * random.NextGaussian());
    }

    [Theory]
    [InlineData("swish")]
    [InlineData("relu")]
    public void Gradients_match_central_finite_differences_of_the_loss(string nonLinearity)
    {
        using var model = CreateNew(nonLinearity);
        Randomize(model, 5);
        var batch = TrainingFixtures.Batch();
        var parameters = model.TrainableParameters;
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        double Loss() => model.Evaluate(batch).Mean;

        // As BitFitTests argues: unit directions over all trained values (the gradient's own and two pseudo-random
        // ones), h = 1e-2, float32 loss rounding of about 6e-4 in each quotient; a wrong term is off by a large
        // fraction of the value. ReLU's kink is crossed by a step of 1e-2 only by pre-activations within 1e-2 of 0,
        // whose share of the derivative is far below the tolerance.
        const float h = 1e-2f;
        var directions = new List<float[][]> { parameters.Select(p => (float[])p.Grad.Clone()).ToArray() };
        for (int seed = 1; seed <= 2; seed++)
        {
            var random = new SeededRandom((ulong)seed);
            directions.Add(parameters.Select(p => Enumerable.Range(0, p.Length).Select(_ => random.NextFloat() - 0.5f).ToArray()).ToArray());
        }
        foreach (var d in directions)
        {
            double norm = Math.Sqrt(d.Sum(v => v.Sum(x => (double)x * x)));
            foreach (var v in d) for (int i = 0; i < v.Length; i++) v[i] = (float)(v[i] / norm);
            double analytic = parameters.Select((p, k) => p.Grad.Select((g, i) => (double)g * d[k][i]).Sum()).Sum();
            void Shift(float by)
            {
                for (int k = 0; k < parameters.Count; k++)
                    for (int i = 0; i < parameters[k].Length; i++) parameters[k].Data[i] += by * d[k][i];
            }
            Shift(h);
            double plus = Loss();
            Shift(-2 * h);
            double minus = Loss();
            Shift(h);
            double numeric = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 + 1e-2 * Math.Abs(analytic), $"directional derivative {analytic}, finite differences {numeric}");
        }
    }

    [Fact]
    public void Gradient_checkpointing_gives_the_same_gradients()
    {
        var batch = TrainingFixtures.Batch();
        string saved = Path.Combine(_dir, "start");
        using (var start = CreateNew())
        {
            Randomize(start, 13);
            start.Save(saved);
        }
        float[][] Gradients(bool checkpointing)
        {
            using var model = BottleneckFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: checkpointing), saved);
            model.ForwardBackward(batch, 1f, new SeededRandom(1));
            return model.TrainableParameters.Select(p => p.Grad).ToArray();
        }
        var plain = Gradients(false);
        var checkpointed = Gradients(true);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], checkpointed[i]);
    }

    [Fact]
    public void Saves_the_adapters_library_folder_and_loads_it_with_the_trained_logits()
    {
        using var trained = CreateNew();
        Randomize(trained, 7);
        string saved = Path.Combine(_dir, "saved");
        trained.Save(saved);

        Assert.Equal(BottleneckConfig.PeftType, PeftAdapterFolders.PeftType(saved));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved, "adapter_config.json"))))
        {
            var root = config.RootElement;
            Assert.StartsWith("adapters.", root.GetProperty("version").GetString());
            Assert.Equal("Qwen2ForCausalLM", root.GetProperty("model_class").GetString());
            Assert.Equal(trained.Decoder.Config.HiddenSize, root.GetProperty("hidden_size").GetInt32());
            var c = root.GetProperty("config");
            Assert.True(c.GetProperty("mh_adapter").GetBoolean() && c.GetProperty("output_adapter").GetBoolean());
            Assert.Equal(8, c.GetProperty("reduction_factor").GetInt32());
            Assert.Equal("swish", c.GetProperty("non_linearity").GetString());
            Assert.Equal(JsonValueKind.Null, c.GetProperty("architecture").ValueKind);
        }
        var tensors = TrainingFixtures.Read(Path.Combine(saved, "adapter.safetensors"));
        int hidden = trained.Decoder.Config.HiddenSize, layers = trained.Decoder.Config.NumLayers;
        Assert.Equal(layers * 2 * 4, tensors.Count);
        Assert.Equal(hidden / 8 * hidden, tensors["model.layers.0.attention_adapters.adapters.default.adapter_down.0.weight"].Length);
        Assert.Equal(hidden, tensors[$"model.layers.{layers - 1}.output_adapters.adapters.default.adapter_up.bias"].Length);

        var batch = TrainingFixtures.Batch();
        using (var reloaded = BottleneckFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), saved))
        {
            Assert.Equal(trained.TrainableParameters.Select(p => p.Name), reloaded.TrainableParameters.Select(p => p.Name));
            foreach (var (a, b) in trained.TrainableParameters.Zip(reloaded.TrainableParameters)) Assert.Equal(a.Data, b.Data);
            Assert.Equal(trained.Evaluate(batch).Mean, reloaded.Evaluate(batch).Mean);
        }

        int length = TrainingFixtures.Base.AttentionMask[0].Count(m => m == 1);
        int[] ids = TrainingFixtures.Base.InputIds[0][..length];
        float[] Logits(DecoderModel model) => model.Evaluate([ids], [Enumerable.Repeat(1, length).ToArray()]).Logits.Data;
        var trainedLogits = trained.Decoder.Logits(new TrainingBatch(1, length, ids, Enumerable.Repeat(1, length).ToArray(), ids));
        using var unmerged = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [saved]);
        using var plain = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        var withAdapter = Logits(unmerged);
        TrainingFixtures.AssertClose("unmerged logits", trainedLogits, withAdapter, 1e-4, 1e-4);
        Assert.NotEqual(Logits(plain), withAdapter);

        var refused = Assert.Throws<NotSupportedException>(() =>
            SharpTune.Export.ModelExporter.Export(TrainingFixtures.BaseModel, [saved], Path.Combine(_dir, "merged"), long.MaxValue, template: null));
        Assert.Contains("a bottleneck adapter cannot be merged", refused.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "merged")));
    }

    [Fact]
    public void Check_grad_writes_the_gradient_of_every_adapter_tensor()
    {
        string saved = Path.Combine(_dir, "adapter");
        using var model = CreateNew("relu");
        Randomize(model, 11);
        model.Save(saved);
        var batch = TrainingFixtures.Batch();
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        string input = Path.Combine(_dir, "batch.json");
        var f = TrainingFixtures.Base;
        File.WriteAllText(input, JsonSerializer.Serialize(new { input_ids = f.InputIds, attention_mask = f.AttentionMask, labels = f.Labels }));
        string output = Path.Combine(_dir, "grads.safetensors");

        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", saved, "--input", input, "--out", output);

        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        Assert.Equal(model.TrainableParameters.Count, tensors.Keys.Count(k => k.StartsWith("grad.", StringComparison.Ordinal)));
        foreach (var p in model.TrainableParameters) Assert.Equal(p.Grad, tensors["grad." + p.Name]);
    }
}
