using System.Text.Json;
using SharpTune.Data;
using SharpTune.IO.Safetensors;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

/// <summary>
/// Central differences of the loss against the analytic gradient on a tiny random Qwen3 (q/k norm, grouped-query
/// attention, untied lm_head) with a right-padded batch: covers the ops the fixtures do not.
/// </summary>
public sealed class FiniteDifferenceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharptune-fd-" + Guid.NewGuid().ToString("N"));

    public FiniteDifferenceTests()
    {
        Directory.CreateDirectory(_dir);
        const int vocab = 40, hidden = 16, heads = 4, kvHeads = 2, headDim = 6, intermediate = 24, layers = 2;
        File.WriteAllText(Path.Combine(_dir, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model_type"] = "qwen3", ["vocab_size"] = vocab, ["hidden_size"] = hidden, ["intermediate_size"] = intermediate,
            ["num_hidden_layers"] = layers, ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads, ["head_dim"] = headDim,
            ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 10000.0, ["tie_word_embeddings"] = false, ["attention_bias"] = false,
        }));
        var random = new SeededRandom(11);
        var tensors = new List<(string, long[], float[])>();
        void Add(string name, double mean, double std, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(mean + std * random.NextGaussian());
            tensors.Add((name, shape, data));
        }
        Add("model.embed_tokens.weight", 0, 0.5, vocab, hidden);
        Add("lm_head.weight", 0, 0.3, vocab, hidden);
        Add("model.norm.weight", 1, 0.1, hidden);
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", 1, 0.1, hidden);
            Add(p + "post_attention_layernorm.weight", 1, 0.1, hidden);
            Add(p + "self_attn.q_proj.weight", 0, 0.3, heads * headDim, hidden);
            Add(p + "self_attn.k_proj.weight", 0, 0.3, kvHeads * headDim, hidden);
            Add(p + "self_attn.v_proj.weight", 0, 0.3, kvHeads * headDim, hidden);
            Add(p + "self_attn.o_proj.weight", 0, 0.3, hidden, heads * headDim);
            Add(p + "self_attn.q_norm.weight", 1, 0.1, headDim);
            Add(p + "self_attn.k_norm.weight", 1, 0.1, headDim);
            Add(p + "mlp.gate_proj.weight", 0, 0.3, intermediate, hidden);
            Add(p + "mlp.up_proj.weight", 0, 0.3, intermediate, hidden);
            Add(p + "mlp.down_proj.weight", 0, 0.3, hidden, intermediate);
        }
        SafetensorsWriter.Write(Path.Combine(_dir, "model.safetensors"), tensors, metadata: SafetensorsWriter.PyTorchMetadata);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Analytic_gradients_match_central_differences()
    {
        using var model = WeightsFineTuning.Full(DecoderModel.Load(_dir, gradientCheckpointing: true));
        Assert.True(model.Decoder.Layers[0].QNorm is not null);
        // Row 1 is right-padded; its padded positions carry no label.
        int[] ids = [3, 17, 5, 29, 11, 8, 1, 22, 35, 14, 0, 0];
        int[] mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        int[] labels = [-100, 17, 5, 29, 11, 8, -100, 22, 35, 14, -100, -100];
        var batch = new TrainingBatch(2, 6, ids, mask, labels);
        model.ForwardBackward(batch, 1f, new SeededRandom(1));
        var pick = new SeededRandom(5);
        const float step = 1e-2f;
        foreach (var p in model.TrainableParameters)
            for (int trial = 0; trial < 3; trial++)
            {
                int i = pick.NextInt(p.Length);
                float original = p.Data[i];
                p.Data[i] = original + step;
                double plus = model.Evaluate(batch).Mean;
                p.Data[i] = original - step;
                double minus = model.Evaluate(batch).Mean;
                p.Data[i] = original;
                double numeric = (plus - minus) / (2 * step);
                Assert.True(Math.Abs(numeric - p.Grad[i]) <= 2e-3 + 2e-2 * Math.Abs(numeric),
                    $"{p.Name}[{i}]: analytic {p.Grad[i]}, numeric {numeric}");
            }
    }
}
