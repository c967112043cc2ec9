using SharpTune.Model;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

public sealed class FullFineTuningTests
{
    private static string Reference(string file) => Path.Combine(TrainingFixtures.BaseModel, "reference", file);

    private static WeightsFineTuning Load(bool checkpointing = false) =>
        WeightsFineTuning.Full(DecoderModel.Load(TrainingFixtures.BaseModel, checkpointing));

    [Fact]
    public void Gradients_of_every_parameter_match_transformers()
    {
        using var model = Load();
        var loss = model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        Assert.Equal(9, loss.Tokens);
        Assert.Equal(6.342043399810791, loss.Mean, 1e-5 * 6.342);
        TrainingFixtures.AssertGradients(model.TrainableParameters, TrainingFixtures.Read(Reference("full_ft_grads.safetensors")));
        Assert.Equal(39, model.TrainableParameters.Count);
        Assert.False(model.TrainableParameters.Single(p => p.Name == "model.layers.0.self_attn.q_proj.bias").WeightDecay);
        Assert.False(model.TrainableParameters.Single(p => p.Name == "model.norm.weight").WeightDecay);
        Assert.True(model.TrainableParameters.Single(p => p.Name == "lm_head.weight").WeightDecay);
    }

    [Fact]
    public void Gradient_checkpointing_gives_identical_gradients()
    {
        using var plain = Load();
        using var checkpointed = Load(checkpointing: true);
        var batch = TrainingFixtures.Batch();
        var a = plain.ForwardBackward(batch, 1f, new SeededRandom(1));
        var b = checkpointed.ForwardBackward(batch, 1f, new SeededRandom(1));
        Assert.Equal(a.Sum, b.Sum);
        for (int i = 0; i < plain.TrainableParameters.Count; i++)
            Assert.Equal(plain.TrainableParameters[i].Grad, checkpointed.TrainableParameters[i].Grad);
    }

    [Fact]
    public void Grad_scale_scales_and_accumulates()
    {
        using var model = Load();
        var batch = TrainingFixtures.Batch();
        model.ForwardBackward(batch, 0.25f, new SeededRandom(1));
        model.ForwardBackward(batch, 0.25f, new SeededRandom(1));
        var expected = TrainingFixtures.Read(Reference("full_ft_grads.safetensors"));
        var norm = model.TrainableParameters.Single(p => p.Name == "model.norm.weight");
        TrainingFixtures.AssertClose(norm.Name, expected[norm.Name].Select(v => v * 0.5f).ToArray(), norm.Grad, 1e-6, 1e-5);
    }

    [Fact]
    public void Training_logits_equal_the_inference_forward()
    {
        using var model = Load();
        var batch = TrainingFixtures.Batch();
        float[] logits = model.Decoder.Logits(batch);
        using var inference = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        var (_, expected) = inference.Evaluate(TrainingFixtures.Base.InputIds, TrainingFixtures.Base.AttentionMask);
        int v = model.Decoder.Config.VocabSize;
        for (int r = 0; r < batch.Batch * batch.Length; r++)
        {
            if (batch.AttentionMask[r] == 0) continue;
            TrainingFixtures.AssertClose($"logits row {r}", expected.AsSpan(r * v, v).ToArray(), logits.AsSpan(r * v, v).ToArray(), 1e-5, 1e-5);
        }
        Assert.Equal(6.342043399810791, model.Evaluate(batch).Mean, 1e-5 * 6.342);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AdamW_on_the_stored_gradients_reproduces_torch(bool clip)
    {
        string variant = clip ? "full_ft_adamw_clip" : "full_ft_adamw";
        using var model = Load();
        var optimizer = new SingleGroupAdamW(model.TrainableParameters, 0.01);
        // full_ft_grads_step2 are the unclipped run's step-2 gradients, so the clipped run is checked at step 1 only here.
        var grads = new[] { "full_ft_grads.safetensors", "full_ft_grads_step2.safetensors" };
        for (int step = 1; step <= (clip ? 1 : 2); step++)
        {
            var g = TrainingFixtures.Read(Reference(grads[step - 1]));
            foreach (var p in model.TrainableParameters) g[p.Name].CopyTo(p.Grad, 0);
            optimizer.Step(1e-3, clip ? 1.0 : 0);
            var expected = TrainingFixtures.Read(Reference($"{variant}_step{step}.safetensors"));
            foreach (var p in model.TrainableParameters) TrainingFixtures.AssertClose(p.Name, expected[p.Name], p.Data, 1e-6, 1e-6);
        }
    }

    [Theory]
    [InlineData(false, 4.28748893737793)]
    [InlineData(true, 4.235002517700195)]
    public void Two_training_steps_end_to_end(bool clip, double lossAfter)
    {
        string variant = clip ? "full_ft_adamw_clip" : "full_ft_adamw";
        using var model = Load();
        var optimizer = new SingleGroupAdamW(model.TrainableParameters, 0.01);
        var batch = TrainingFixtures.Batch();
        for (int step = 1; step <= 2; step++)
        {
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            model.ForwardBackward(batch, 1f, new SeededRandom(1));
            optimizer.Step(1e-3, clip ? 1.0 : 0);
            var expected = TrainingFixtures.Read(Reference($"{variant}_step{step}.safetensors"));
            foreach (var p in model.TrainableParameters) TrainingFixtures.AssertClose(p.Name, expected[p.Name], p.Data, 1e-4, 0);
        }
        Assert.Equal(lossAfter, model.Evaluate(batch).Mean, 1e-4);
    }

    [Fact]
    public void Save_writes_an_hf_folder_that_loads_back()
    {
        using var model = Load();
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-full-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.Save(dir);
            Assert.True(File.Exists(Path.Combine(dir, "config.json")));
            Assert.True(File.Exists(Path.Combine(dir, "generation_config.json")));
            var saved = TrainingFixtures.Read(Path.Combine(dir, "model.safetensors"));
            var original = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "model.safetensors"));
            Assert.Equal(original.Keys.Order(), saved.Keys.Order());
            foreach (var (name, data) in original) Assert.Equal(data, saved[name]);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
