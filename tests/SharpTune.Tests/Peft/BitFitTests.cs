using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Peft.BitFit;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Peft;

/// <summary>
/// BitFit (issue 16): its gradients through `check grad` against PyTorch's full fine-tuning gradients of the same
/// tensors, against central finite differences of the loss, and a saved folder served and merged with the trained logits.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class BitFitTests : IDisposable
{
    private static readonly string[] Norms = ["input_layernorm", "post_attention_layernorm", "norm"];
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-bitfit-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static BitFitFineTuning CreateNew(params string[] extraModules) =>
        BitFitFineTuning.CreateNew(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false),
            new FinetuningArguments { FinetuningType = FinetuningType.BitFit, BitFitExtraModules = [.. extraModules] });

    [Fact]
    public void Trains_every_bias_and_the_extra_norms_only()
    {
        using var biases = CreateNew();
        Assert.All(biases.TrainableParameters, p => Assert.EndsWith(".bias", p.Name));
        Assert.Equal(biases.Decoder.Tensors.Count(t => t.Name.EndsWith(".bias", StringComparison.Ordinal)), biases.TrainableParameters.Count);
        using var withNorms = CreateNew(Norms);
        Assert.Equal(biases.TrainableParameters.Count + 2 * withNorms.Decoder.Config.NumLayers + 1, withNorms.TrainableParameters.Count);
        Assert.Contains(withNorms.TrainableParameters, p => p.Name == "model.norm.weight");
        Assert.Equal(withNorms.Decoder.Tensors.Sum(t => (long)t.Length), withNorms.TotalParameterCount);
        var e = Assert.Throws<ArgumentException>(() => CreateNew("embed_tokens"));
        Assert.Contains("bitfit_extra_modules: 'model.embed_tokens.weight' is a matrix", e.Message);
    }

    [Fact]
    public void Check_grad_gives_pytorchs_gradients_of_the_biases_and_norms()
    {
        string adapter = Path.Combine(_dir, "adapter");
        using (var model = CreateNew(Norms)) model.Save(adapter);
        Assert.Equal(BitFitConfig.PeftType, PeftAdapterFolders.PeftType(adapter));
        string input = Path.Combine(_dir, "batch.json");
        var f = TrainingFixtures.Base;
        File.WriteAllText(input, System.Text.Json.JsonSerializer.Serialize(new { input_ids = f.InputIds, attention_mask = f.AttentionMask, labels = f.Labels }));
        string output = Path.Combine(_dir, "grads.safetensors");

        var result = CliRunner.Run("check", "grad", "--model", TrainingFixtures.BaseModel, "--adapter", adapter, "--input", input, "--out", output);

        Assert.True(result.ExitCode == 0, result.Stderr);
        var tensors = TrainingFixtures.Read(output);
        var full = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "reference", "full_ft_grads.safetensors"));
        var grads = tensors.Where(kv => kv.Key.StartsWith("grad.", StringComparison.Ordinal)).ToList();
        Assert.Equal(3 * 3 + 2 * 3 + 1, grads.Count);
        foreach (var (key, grad) in grads)
        {
            var expected = full[key["grad.".Length..]];
            TrainingFixtures.AssertClose(key, expected, grad, 1e-7 + 1e-5 * expected.Max(v => Math.Abs(v)), 1e-5);
        }
    }

    [Fact]
    public void Gradients_match_central_finite_differences_of_the_loss()
    {
        using var model = CreateNew(Norms);
        var batch = TrainingFixtures.Batch();
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        TunerChecks.AssertGradientsMatchFiniteDifferences(model, batch);
    }

    [Fact]
    public void A_saved_folder_serves_and_merges_with_the_trained_logits()
    {
        var batch = TrainingFixtures.Batch();
        using var trained = CreateNew(Norms);
        trained.ForwardBackward(batch, 1f, new SeededRandom(1));
        foreach (var p in trained.TrainableParameters)
            for (int i = 0; i < p.Data.Length; i++) p.Data[i] -= 0.5f * p.Grad[i];
        string saved = Path.Combine(_dir, "saved");
        trained.Save(saved);

        using (var reloaded = BitFitFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), saved))
            TunerChecks.AssertReloads(trained, reloaded, batch);

        var withAdapter = TunerChecks.AssertServedUnmerged(trained.Decoder, saved);

        string merged = Path.Combine(_dir, "merged");
        SharpTune.Export.ModelExporter.Export(TrainingFixtures.BaseModel, [saved], merged, long.MaxValue, template: null);
        using var mergedModel = DecoderModel.LoadForGeneration(merged);
        Assert.Equal(withAdapter, TunerChecks.FirstSequenceLogits(mergedModel));
    }
}
