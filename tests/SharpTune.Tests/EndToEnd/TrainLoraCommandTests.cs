using System.Text.Json;
using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Reporting;

namespace SharpTune.Tests.EndToEnd;

/// <summary>`sharptune train` with LoRA on the tiny model: what lands in output_dir, and LLaMA-Factory's output_dir rule.</summary>
[Collection(CliCollection.Name)]
public sealed class TrainLoraCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private static readonly string[] Projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    [Fact]
    public void LoraRunWritesAPeftAdapterLogsCheckpointsPlotsAndTokenizer()
    {
        string output = tiny.PathFor("lora");
        var r = TinyModelFixture.Train(tiny.WriteConfig("lora", output, ("plot_loss", true)));
        Assert.Contains("trainable params: ", r.Stderr);
        Assert.Contains("train_loss = ", r.Stdout);

        using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
        {
            var root = config.RootElement;
            Assert.Equal("LORA", root.GetProperty("peft_type").GetString());
            Assert.Equal(4, root.GetProperty("r").GetInt32());
            Assert.Equal(8, root.GetProperty("lora_alpha").GetDouble());
            Assert.Equal(Projections.Order(StringComparer.Ordinal), root.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal));
        }

        using (var adapter = SafetensorsFile.Open(Path.Combine(output, "adapter_model.safetensors")))
        {
            // 2 layers × 7 projections × (A, B); the tiny preset: hidden 64, intermediate 176, 4 heads and 2 kv heads of 16.
            Assert.Equal(2 * 7 * 2, adapter.Tensors.Count);
            var outIn = new Dictionary<string, (int Out, int In)>
            {
                ["self_attn.q_proj"] = (64, 64), ["self_attn.k_proj"] = (32, 64), ["self_attn.v_proj"] = (32, 64), ["self_attn.o_proj"] = (64, 64),
                ["mlp.gate_proj"] = (176, 64), ["mlp.up_proj"] = (176, 64), ["mlp.down_proj"] = (64, 176),
            };
            for (int layer = 0; layer < 2; layer++)
                foreach (var (module, (outFeatures, inFeatures)) in outIn)
                {
                    string prefix = $"base_model.model.model.layers.{layer}.{module}";
                    var a = adapter.Get(prefix + ".lora_A.weight");
                    var b = adapter.Get(prefix + ".lora_B.weight");
                    Assert.Equal((DType.F32, $"[4, {inFeatures}]"), (a.DType, $"[{string.Join(", ", a.Shape)}]"));
                    Assert.Equal((DType.F32, $"[{outFeatures}, 4]"), (b.DType, $"[{string.Join(", ", b.Shape)}]"));
                    // B starts at zero: six optimizer steps must have moved it.
                    Assert.Contains(adapter.ReadFloat32(prefix + ".lora_B.weight"), v => v != 0);
                }
        }

        using (var state = TinyModelFixture.ReadJson(Path.Combine(output, "trainer_state.json")))
        {
            Assert.Equal(6, state.RootElement.GetProperty("global_step").GetInt32());
            var losses = state.RootElement.GetProperty("log_history").EnumerateArray().Where(e => e.TryGetProperty("loss", out _)).ToList();
            Assert.Equal([1, 2, 3, 4, 5, 6], losses.Select(e => e.GetProperty("step").GetInt32()));
            Assert.All(losses, e => Assert.True(double.IsFinite(e.GetProperty("loss").GetDouble()) && e.GetProperty("loss").GetDouble() > 0));
        }
        var log = TinyModelFixture.TrainerLog(output);
        Assert.Equal([1, 2, 3, 4, 5, 6, 6], log.Select(l => l.Step));
        Assert.Null(log[^1].Loss);
        Assert.All(log[..^1], l => Assert.NotNull(l.Loss));
        Assert.True(log[^2].Loss < log[0].Loss, $"the loss should fall over six steps at lr 1e-2: {string.Join(", ", log)}");

        foreach (string results in new[] { "train_results.json", "all_results.json" })
        {
            using var json = TinyModelFixture.ReadJson(Path.Combine(output, results));
            Assert.True(json.RootElement.GetProperty("train_loss").GetDouble() > 0);
            Assert.True(json.RootElement.TryGetProperty("train_runtime", out _));
        }
        var png = PngTestImage.Read(File.ReadAllBytes(Path.Combine(output, "training_loss.png")));
        Assert.True(png.Width > 100 && png.Height > 100, $"{png.Width}×{png.Height}");
        Assert.Contains("<svg", File.ReadAllText(Path.Combine(output, "training_loss.svg")));
        Assert.Contains($"figure saved at: {Path.Combine(output, "training_loss.png")}", r.Stderr);

        Assert.Equal(["checkpoint-3", "checkpoint-6"], Directory.GetDirectories(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string checkpoint in new[] { "checkpoint-3", "checkpoint-6" })
            Assert.True(File.Exists(Path.Combine(output, checkpoint, "adapter_model.safetensors")), checkpoint);
        Assert.Equal(TinyModelFixture.TensorBytes(Path.Combine(output, "adapter_model.safetensors")),
            TinyModelFixture.TensorBytes(Path.Combine(output, "checkpoint-6", "adapter_model.safetensors")));
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(tiny.ModelDir, file)), File.ReadAllBytes(Path.Combine(output, file)));

        Assert.NotEqual(TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?"), TinyModelFixture.GreedyIds(tiny.ModelDir, "Who are you?", output));
        Assert.NotEqual(TinyModelFixture.Generate(tiny.ModelDir, "Who are you?"), TinyModelFixture.Generate(tiny.ModelDir, "Who are you?", output));
    }
}
