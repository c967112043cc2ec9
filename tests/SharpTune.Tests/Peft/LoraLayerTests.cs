using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Engine;

namespace SharpTune.Tests.Peft;

/// <summary>The one LoRA layer as the tuner seam uses it: its unmerged forward, its merged weight, and unmerging.</summary>
public sealed class LoraLayerTests
{
    private const int Rank = 3, In = 7, Out = 5;

    private static LoraLayer Layer() => new(new LoraPair("model.layers.0.mlp.up_proj",
        Enumerable.Range(0, Rank * In).Select(i => MathF.Cos(0.7f * i)).ToArray(),
        Enumerable.Range(0, Out * Rank).Select(i => MathF.Sin(i + 1)).ToArray(), Rank, In, Out), scaling: 1.75f, dropout: 0f, CpuBackend.CreateDefault());

    private static float[] Weight() => Enumerable.Range(0, Out * In).Select(i => 0.05f * i - 0.8f).ToArray();

    [Fact]
    public void Merged_weight_computes_what_the_base_plus_the_unmerged_layer_computes()
    {
        var layer = Layer();
        const int rows = 4;
        var x = Enumerable.Range(0, rows * In).Select(i => MathF.Sin(0.3f * i)).ToArray();
        float[] weight = Weight();
        var backend = CpuBackend.CreateDefault();
        var output = backend.FromHost(Multiply(x, rows, weight), rows, Out);
        layer.Forward(backend.FromHost(x, rows, In), rows, output, TunerPass.Evaluate, random: null);
        var unmerged = backend.ToHost(output);

        float[] merged = Weight();
        layer.MergeInto(merged, null);
        var fromMerged = Multiply(x, rows, merged);

        for (int i = 0; i < unmerged.Length; i++) Assert.Equal(unmerged[i], fromMerged[i], 1e-5f);
        Assert.True(merged.Zip(weight).Max(p => Math.Abs(p.First - p.Second)) > 0.1, "merging must change the weight");
    }

    [Fact]
    public void Unmerge_takes_the_merged_layer_out_again()
    {
        var layer = Layer();
        float[] weight = Weight();
        layer.MergeInto(weight, null);
        layer.UnmergeFrom(weight, null);
        float[] original = Weight();
        for (int i = 0; i < weight.Length; i++) Assert.Equal(original[i], weight[i], 1e-6f);
    }

    [Fact]
    public void Merging_into_a_weight_of_another_shape_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => Layer().MergeInto(new float[Out * In + 1], null));
        Assert.Contains("model.layers.0.mlp.up_proj", error.Message);
    }

    private static float[] Multiply(float[] x, int rows, float[] weight)
    {
        var y = new float[rows * Out];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < Out; o++)
            {
                double sum = 0;
                for (int i = 0; i < In; i++) sum += (double)x[r * In + i] * weight[o * In + i];
                y[r * Out + o] = (float)sum;
            }
        return y;
    }
}
