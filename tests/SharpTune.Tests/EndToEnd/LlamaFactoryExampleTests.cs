using SharpTune.Engine;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// LLaMA-Factory's own examples/train_lora/qwen3_lora_sft.yaml, unchanged except for the model, data and output
/// paths and the sizes that keep it to two tiny steps, trains with `sharptune train`.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class LlamaFactoryExampleTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    [Fact]
    public void Qwen3LoraSftExampleTrainsTheTinyModel()
    {
        string output = tiny.PathFor("qwen3-lora-sft");
        var r = TinyModelFixture.Train(TestPaths.Fixtures("llamafactory", "examples", "train_lora", "qwen3_lora_sft.yaml"),
            $"model_name_or_path={tiny.ModelDir}",
            $"dataset_dir={TestPaths.Fixtures("llamafactory")}",
            $"output_dir={output}",
            "max_steps=2", "cutoff_len=64", "max_samples=8", "save_steps=2",
            "per_device_train_batch_size=2", "gradient_accumulation_steps=1");

        // The example's dataset list (identity,alpaca_en_demo) and its keys SharpTune has no use for, reported as notes.
        Assert.Contains("[sharptune] note: trust_remote_code is ignored: SharpTune runs no model code from model folders", r.Stderr);
        // The example's bf16: true: bf16 compute where this machine has a bf16 GEMM, else fp32 with a note.
        Assert.Contains(Bf16ComputeMatrix.AvailableKernel is null
            ? "[sharptune] note: bf16: this machine has no bf16 GEMM"
            : "[sharptune] bf16: frozen bf16 weights are multiplied on oneDNN's bf16 GEMM", r.Stderr);
        Assert.Contains("[sharptune] train: 16 examples, eval: 0 examples", r.Stderr);
        Assert.Contains("training 2 steps on 16 examples", r.Stderr);
        // logging_steps is the example's 10, so two steps log no loss and there is nothing to plot.
        Assert.Contains("[sharptune] no loss to plot", r.Stderr);

        using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
        {
            Assert.Equal(8, config.RootElement.GetProperty("r").GetInt32());
            Assert.Equal(16, config.RootElement.GetProperty("lora_alpha").GetDouble());
            Assert.Equal(7, config.RootElement.GetProperty("target_modules").GetArrayLength());
        }
        using (var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json")))
            Assert.Equal(2, state.RootElement.GetProperty("global_step").GetInt32());
        Assert.Equal(["checkpoint-2"], Directory.GetDirectories(output).Select(d => Path.GetFileName(d)!));
        Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")));
        Assert.False(string.IsNullOrWhiteSpace(TinyModelFixture.Generate(tiny.ModelDir, "Who are you?", output)));
    }
}
