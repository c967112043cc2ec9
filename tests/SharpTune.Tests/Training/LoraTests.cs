using SharpTune.Hparams;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

public sealed class LoraTests
{
    private static LoraFineTuning Resume(string adapter, bool checkpointing = false) =>
        LoraFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, checkpointing), adapter);

    [Theory]
    [InlineData(false, 6.352047443389893)]
    [InlineData(true, 6.235831260681152)]
    public void Adapter_gradients_match_peft(bool rslora, double expectedLoss)
    {
        string adapter = rslora ? TrainingFixtures.RsloraAdapter : TrainingFixtures.LoraAdapter;
        using var model = Resume(adapter);
        Assert.Equal(rslora ? 4.0f : 2.0f, model.Adapters[0].Scaling);
        var loss = model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        Assert.Equal(expectedLoss, loss.Mean, 1e-5 * expectedLoss);
        TrainingFixtures.AssertGradients(model.TrainableParameters, TrainingFixtures.Read(Path.Combine(adapter, "reference", "lora_grads.safetensors")));
        Assert.DoesNotContain(model.Decoder.Tensors, t => t.IsTrainable);
    }

    [Fact]
    public void Checkpointing_gives_identical_adapter_gradients()
    {
        using var plain = Resume(TrainingFixtures.LoraAdapter);
        using var checkpointed = Resume(TrainingFixtures.LoraAdapter, checkpointing: true);
        plain.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        checkpointed.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        for (int i = 0; i < plain.TrainableParameters.Count; i++)
            Assert.Equal(plain.TrainableParameters[i].Grad, checkpointed.TrainableParameters[i].Grad);
    }

    [Fact]
    public void Two_adamw_steps_match_peft()
    {
        string reference = Path.Combine(TrainingFixtures.LoraAdapter, "reference");
        using var stored = Resume(TrainingFixtures.LoraAdapter);
        var storedOptimizer = new SingleGroupAdamW(stored.TrainableParameters, 0.01);
        using var model = Resume(TrainingFixtures.LoraAdapter);
        var optimizer = new SingleGroupAdamW(model.TrainableParameters, 0.01);
        var batch = TrainingFixtures.Batch();
        string[] grads = ["lora_grads.safetensors", "lora_grads_step2.safetensors"];
        for (int step = 1; step <= 2; step++)
        {
            var g = TrainingFixtures.Read(Path.Combine(reference, grads[step - 1]));
            foreach (var p in stored.TrainableParameters) g[p.Name].CopyTo(p.Grad, 0);
            storedOptimizer.Step(1e-3, 0);
            foreach (var p in model.TrainableParameters) p.ZeroGrad();
            model.ForwardBackward(batch, 1f, new SeededRandom(1));
            optimizer.Step(1e-3, 0);
            var expected = TrainingFixtures.Read(Path.Combine(reference, $"lora_adamw_step{step}.safetensors"));
            foreach (var p in stored.TrainableParameters) TrainingFixtures.AssertClose(p.Name, expected[p.Name], p.Data, 1e-6, 1e-6);
            foreach (var p in model.TrainableParameters) TrainingFixtures.AssertClose(p.Name, expected[p.Name], p.Data, 1e-4, 0);
        }
        Assert.Equal(5.369134426116943, model.Evaluate(batch).Mean, 1e-4);
    }

    [Fact]
    public void Saved_adapter_has_the_fixture_keys_shapes_and_values()
    {
        using var model = Resume(TrainingFixtures.LoraAdapter);
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-lora-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.Save(dir);
            using var expected = SharpTune.IO.Safetensors.SafetensorsFile.Open(Path.Combine(TrainingFixtures.LoraAdapter, LoraAdapterFile.FileName));
            using var actual = SharpTune.IO.Safetensors.SafetensorsFile.Open(Path.Combine(dir, LoraAdapterFile.FileName));
            Assert.Equal(expected.Tensors.Select(t => t.Name).Order(), actual.Tensors.Select(t => t.Name).Order());
            foreach (var t in expected.Tensors)
            {
                var a = actual.Get(t.Name);
                Assert.Equal(t.DType, a.DType);
                Assert.Equal(t.Shape, a.Shape);
                Assert.Equal(expected.ReadFloat32(t.Name), actual.ReadFloat32(t.Name));
            }
            var config = LoraConfig.Load(dir);
            Assert.Equal(8, config.Rank);
            Assert.Equal(16, config.Alpha);
            Assert.Equal(DecoderArchitecture.Qwen2.LinearNames.Order(), config.TargetModules.Order());
            Assert.Equal(TrainingFixtures.BaseModel, config.BaseModelNameOrPath);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void New_adapter_follows_peft_initialisation_and_lf_arguments()
    {
        var args = new FinetuningArguments { LoraRank = 4, LoraTarget = ["q_proj", "v_proj"], AdditionalTarget = ["lm_head"] };
        using var model = (LoraFineTuning)TrainableModels.Create(TrainingFixtures.BaseModel, args, false, new SeededRandom(7), []);
        Assert.Equal(6, model.Adapters.Count);
        Assert.Equal(2f, model.Adapters[0].Scaling);
        var a = model.Adapters[0].A.Data;
        float bound = 1f / MathF.Sqrt(48);
        Assert.All(a, v => Assert.InRange(v, -bound, bound));
        Assert.True(a.Max() > bound * 0.8f && a.Min() < -bound * 0.8f);
        Assert.All(model.Adapters[0].B.Data, v => Assert.Equal(0f, v));
        Assert.Equal("base_model.model.lm_head.weight", model.TrainableParameters[^1].Name);
        long lora = 3 * 2 * (4 * 48 + 48 * 4);
        long expectedTrainable = lora + 512 * 48;
        Assert.Equal(expectedTrainable, model.TrainableParameters.Sum(p => (long)p.Length));
        // PEFT counts the frozen lm_head next to its trainable copy.
        Assert.Equal(model.Decoder.Tensors.Sum(t => t.Length) + expectedTrainable, model.TotalParameterCount);
        Assert.StartsWith($"trainable params: {expectedTrainable:N0} || all params: ", TrainableModels.Summary(model));
    }
}
