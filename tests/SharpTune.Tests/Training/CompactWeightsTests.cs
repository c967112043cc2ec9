using SharpTune.Data;
using SharpTune.Engine;
using SharpTune.Hparams;
using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

/// <summary>
/// The trainable decoder keeps frozen matrices as the checkpoint stores them: memory close to the checkpoint's own
/// size, and the same training numbers as fp32 copies of those matrices would give.
/// </summary>
public sealed class CompactWeightsTests
{
    /// <summary>The bf16 qwen2-tiny fixture (tied embeddings, vocab 151936).</summary>
    private static string Bf16Model => TestPaths.Fixtures("qwen2-tiny");

    /// <summary>Two rows of six tokens with masked labels and padding (the bf16 compute tests use it too).</summary>
    internal static TrainingBatch TinyBatch()
    {
        int[] ids = [9707, 11, 1879, 0, 151643, 42, 7, 100, 2000, 151644, 13, 77];
        return new TrainingBatch(2, 6, ids, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [-100, 11, 1879, 0, 151643, 42, -100, -100, 2000, 151644, -100, -100]);
    }

    private static FinetuningArguments Lora(params string[] additionalTarget) =>
        new() { LoraRank = 4, LoraTarget = ["all"], LoraDropout = 0.1, AdditionalTarget = additionalTarget.ToList() };

    [Fact]
    public void Lora_on_a_bf16_base_holds_two_bytes_per_frozen_parameter()
    {
        using var model = (LoraFineTuning)TrainableModels.Create(Bf16Model, Lora(), false, new SeededRandom(3), []);
        var decoder = model.Decoder;
        long parameters = decoder.Tensors.Sum(t => t.Length);
        double bytesPerParameter = (double)decoder.StorageBytes / parameters;
        Assert.InRange(bytesPerParameter, 2.0, 2.01);
        Assert.All(decoder.Linears, l => Assert.IsType<StoredMatrix>(l.Weight.Frozen));
        Assert.IsType<StoredMatrix>(decoder.Embedding.Frozen);
        Assert.Same(decoder.Embedding, decoder.LmHead);
    }

    [Fact]
    public void Stored_bf16_weights_train_like_their_fp32_copies()
    {
        using var stored = (LoraFineTuning)TrainableModels.Create(Bf16Model, Lora(), true, new SeededRandom(3), []);
        using var widened = (LoraFineTuning)TrainableModels.Create(Bf16Model, Lora(), true, new SeededRandom(3), []);
        foreach (var t in widened.Decoder.Tensors) t.Materialize();
        Assert.All(widened.Decoder.Tensors, t => Assert.Null(t.Frozen));
        // A non-zero B (PEFT starts it at zero) so that every adapter matrix gets a gradient.
        var random = new Random(11);
        for (int i = 0; i < stored.Adapters.Count; i++)
            for (int j = 0; j < stored.Adapters[i].B.Data.Length; j++)
                stored.Adapters[i].B.Data[j] = widened.Adapters[i].B.Data[j] = (float)(random.NextDouble() - 0.5);

        var storedLoss = stored.ForwardBackward(TinyBatch(), 1f, new SeededRandom(5));
        var widenedLoss = widened.ForwardBackward(TinyBatch(), 1f, new SeededRandom(5));
        Assert.Equal(widenedLoss.Mean, storedLoss.Mean, 1e-5);
        for (int i = 0; i < stored.TrainableParameters.Count; i++)
        {
            var expected = widened.TrainableParameters[i].Grad;
            double scale = expected.Max(v => Math.Abs(v));
            Assert.True(scale > 0, $"{widened.TrainableParameters[i].Name} has no gradient");
            TrainingFixtures.AssertClose(stored.TrainableParameters[i].Name, expected, stored.TrainableParameters[i].Grad, 1e-5 * scale, 1e-4);
        }
    }

    [Fact]
    public void Trained_tensors_become_fp32_parameters_and_the_rest_stays_compact()
    {
        using var model = (LoraFineTuning)TrainableModels.Create(Bf16Model, Lora("embed_tokens"), false, new SeededRandom(3), []);
        var embedding = model.Decoder.Embedding;
        Assert.Null(embedding.Frozen);
        Assert.True(embedding.IsTrainable);
        Assert.Equal(embedding.Length * sizeof(float), embedding.StorageBytes);
        Assert.All(model.Decoder.Linears, l => Assert.NotNull(l.Weight.Frozen));
    }

    [Fact]
    public void Merging_an_earlier_adapter_widens_only_the_modules_it_changes()
    {
        var args = new FinetuningArguments { FinetuningType = FinetuningType.Lora };
        using var stacked = (LoraFineTuning)TrainableModels.Create(TrainingFixtures.BaseModel, args, false, new SeededRandom(1),
            [TrainingFixtures.LoraAdapter, TrainingFixtures.RsloraAdapter]);
        var merged = LoraConfig.Load(TrainingFixtures.LoraAdapter).TargetModules;
        foreach (var linear in stacked.Decoder.Linears)
            Assert.Equal(merged.Contains(linear.ModuleName), linear.Weight.Frozen is null);
        Assert.NotNull(stacked.Decoder.Embedding.Frozen);

        // The same adapter on the fixture's merged model (PEFT's merge_and_unload of the first adapter).
        using var reference = (LoraFineTuning)TrainableModels.Create(Path.Combine(TrainingFixtures.LoraAdapter, "merged"), args, false,
            new SeededRandom(1), [TrainingFixtures.RsloraAdapter]);
        var batch = TrainingFixtures.Batch();
        var loss = stacked.ForwardBackward(batch, 1f, new SeededRandom(1));
        var expectedLoss = reference.ForwardBackward(batch, 1f, new SeededRandom(1));
        Assert.Equal(expectedLoss.Mean, loss.Mean, 1e-5);
        for (int i = 0; i < reference.TrainableParameters.Count; i++)
        {
            var expected = reference.TrainableParameters[i].Grad;
            TrainingFixtures.AssertClose(reference.TrainableParameters[i].Name, expected, stacked.TrainableParameters[i].Grad,
                1e-5 * expected.Max(v => Math.Abs(v)), 1e-4);
        }
    }

    [Fact]
    public void Freeze_saves_frozen_matrices_byte_for_byte()
    {
        string output = Directory.CreateTempSubdirectory("sharptune-freeze-").FullName;
        try
        {
            var args = new FinetuningArguments { FinetuningType = FinetuningType.Freeze, FreezeTrainableLayers = 1 };
            using (var model = TrainableModels.Create(Bf16Model, args, false, new SeededRandom(1), []))
                model.Save(output);
            using var saved = SharpTune.IO.Safetensors.SafetensorsCheckpoint.OpenDirectory(output);
            using var original = SharpTune.IO.Safetensors.SafetensorsCheckpoint.OpenDirectory(Bf16Model);
            foreach (string name in original.Names)
                Assert.True(original.Bytes(name).SequenceEqual(saved.Bytes(name)), $"{name} changed");
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }
}
