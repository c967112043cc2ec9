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
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        TunerChecks.AssertGradientsMatchFiniteDifferences(model, batch);
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
            TunerChecks.AssertReloads(trained, reloaded, batch);

        var withAdapter = TunerChecks.AssertServedUnmerged(trained.Decoder, saved);

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
