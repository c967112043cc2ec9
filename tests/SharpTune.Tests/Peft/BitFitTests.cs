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
        var parameters = model.TrainableParameters;
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        double Loss() => model.Evaluate(batch).Mean;

        // Directional derivatives along unit vectors over all trained values: the gradient's own direction (g·d = |g|)
        // and two fixed pseudo-random ones. The model computes in float32: a loss of about 6.3 carries rounding of
        // about 1e-6 relative, so each difference quotient with h = 1e-2 has noise of about 2·6e-6 / 2h ≈ 6e-4; the
        // truncation error h²/6 · L''' is below that for the smooth loss. A wrong gradient (a missing term, a wrong
        // scale or a sign) is off by a large fraction of |g|, far beyond 2e-3 + 1e-2 of the value.
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

        string merged = Path.Combine(_dir, "merged");
        SharpTune.Export.ModelExporter.Export(TrainingFixtures.BaseModel, [saved], merged, long.MaxValue, template: null);
        using var mergedModel = DecoderModel.LoadForGeneration(merged);
        Assert.Equal(withAdapter, Logits(mergedModel));
    }
}
