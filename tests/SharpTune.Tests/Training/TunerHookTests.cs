using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Tests.Engine;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

/// <summary>
/// The decoder's projections honour both sides of the tuner seam (issue 14 item 3): a tuner that scales the input
/// before the base product (IA3 on a feed-forward Linear) and adds to the output, checked against the analytic forward
/// y = W·(x ⊙ l) + s and its gradients in training, and against the same change folded into the weights in inference.
/// </summary>
public sealed class TunerHookTests
{
    private const int Rows = 3, In = 5, Out = 4;

    /// <summary>IA3's input side (x ⊙ l) and an additive output shift s, each a trainable vector, computed on the backend.</summary>
    private sealed class ScaleInputShiftOutputTuner(string modulePath, int inFeatures, int outFeatures, IComputeBackend backend) : ILinearTuner
    {
        private Tensor? _scaled;

        public Parameter Scale { get; } = new("scale", [inFeatures], Enumerable.Range(0, inFeatures).Select(i => 0.5f + MathF.Sin(0.3f * i) * 0.4f).ToArray());
        public Parameter Shift { get; } = new("shift", [outFeatures], Enumerable.Range(0, outFeatures).Select(o => 0.1f * MathF.Cos(o) - 0.05f).ToArray());
        public string ModulePath => modulePath;
        public int InFeatures => inFeatures;
        public int OutFeatures => outFeatures;
        public IReadOnlyList<Parameter> Parameters => [Scale, Shift];
        public bool TransformsInput => true;

        public Tensor TransformInput(Tensor x, int rows, TunerPass pass)
        {
            _scaled = backend.Allocate(rows, InFeatures);
            backend.ScaleColumns(x, rows, Scale.Data, _scaled);
            return _scaled;
        }

        public void TransformInputBackward(Tensor x, Tensor dInput, int rows, Tensor dx)
        {
            backend.AddColumnProducts(x, dInput, rows, Scale.Grad);
            backend.ScaleColumns(dInput, rows, Scale.Data, dx);
        }

        public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random) => backend.AddBias(y, rows, Shift.Data);

        public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx) => backend.ColumnSums(dy, rows, Shift.Grad);

        public void MergeInto(float[] weight, float[]? bias) => throw new NotSupportedException("the shift would need a bias");
        public void UnmergeFrom(float[] weight, float[]? bias) => throw new NotSupportedException("the shift would need a bias");
    }

    private static readonly float[] X = Enumerable.Range(0, Rows * In).Select(i => MathF.Sin(0.7f * i + 0.3f)).ToArray();
    private static readonly float[] Dy = Enumerable.Range(0, Rows * Out).Select(i => MathF.Cos(0.4f * i)).ToArray();

    private static readonly IComputeBackend Backend = CpuBackend.CreateDefault();

    private static (TrainableLinear Linear, ScaleInputShiftOutputTuner Tuner) Projection()
    {
        var weight = new ModelTensor("model.layers.0.mlp.down_proj.weight", [Out, In], Enumerable.Range(0, Out * In).Select(i => 0.05f * i - 0.4f).ToArray());
        weight.MakeTrainable();
        var linear = new TrainableLinear("model.layers.0.mlp.down_proj", In, Out, Backend, weight, bias: null);
        var tuner = new ScaleInputShiftOutputTuner("model.layers.0.mlp.down_proj", In, Out, Backend);
        linear.Tuners.Add(tuner);
        return (linear, tuner);
    }

    [Fact]
    public void Forward_is_the_base_product_of_the_scaled_input_plus_the_output_hook()
    {
        var (linear, tuner) = Projection();
        var output = Backend.Allocate(Rows, Out);
        linear.Forward(Backend.FromHost(X, Rows, In), Rows, output, TunerPass.Train, random: null);
        var y = Backend.ToHost(output);

        var w = linear.Weight.Data;
        for (int r = 0; r < Rows; r++)
            for (int o = 0; o < Out; o++)
            {
                double expected = tuner.Shift.Data[o];
                for (int i = 0; i < In; i++) expected += (double)w[o * In + i] * X[r * In + i] * tuner.Scale.Data[i];
                Assert.Equal(expected, y[r * Out + o], 1e-5);
            }
    }

    [Fact]
    public void Backward_gives_the_analytic_gradients_through_the_input_hook()
    {
        var (linear, tuner) = Projection();
        var x = Backend.FromHost(X, Rows, In);
        linear.Forward(x, Rows, Backend.Allocate(Rows, Out), TunerPass.Train, random: null);
        var dInput = Backend.FromHost(Enumerable.Repeat(1f, Rows * In).ToArray(), Rows, In);
        linear.Backward(x, Backend.FromHost(Dy, Rows, Out), Rows, dInput, accumulate: true);
        var dx = Backend.ToHost(dInput);

        var w = linear.Weight.Data;
        var l = tuner.Scale.Data;
        for (int r = 0; r < Rows; r++)
            for (int i = 0; i < In; i++)
            {
                double dScaled = 0;
                for (int o = 0; o < Out; o++) dScaled += (double)Dy[r * Out + o] * w[o * In + i];
                Assert.Equal(1 + dScaled * l[i], dx[r * In + i], 1e-5);
            }
        for (int i = 0; i < In; i++)
        {
            double dl = 0;
            for (int r = 0; r < Rows; r++)
                for (int o = 0; o < Out; o++) dl += (double)X[r * In + i] * Dy[r * Out + o] * w[o * In + i];
            Assert.Equal(dl, tuner.Scale.Grad[i], 1e-5);
        }
        for (int o = 0; o < Out; o++)
        {
            Assert.Equal(Enumerable.Range(0, Rows).Sum(r => (double)Dy[r * Out + o]), tuner.Shift.Grad[o], 1e-5);
            for (int i = 0; i < In; i++)
            {
                double dw = 0;
                for (int r = 0; r < Rows; r++) dw += (double)Dy[r * Out + o] * X[r * In + i] * l[i];
                Assert.Equal(dw, linear.Weight.Grad![o * In + i], 1e-5);
            }
        }
    }

    [Fact]
    public void Disabled_tuners_leave_the_base_product_alone()
    {
        var (linear, _) = Projection();
        linear.TunersEnabled = false;
        var output = Backend.Allocate(Rows, Out);
        linear.Forward(Backend.FromHost(X, Rows, In), Rows, output, TunerPass.Evaluate, random: null);
        var y = Backend.ToHost(output);

        var w = linear.Weight.Data;
        for (int r = 0; r < Rows; r++)
            for (int o = 0; o < Out; o++)
                Assert.Equal(Enumerable.Range(0, In).Sum(i => (double)w[o * In + i] * X[r * In + i]), y[r * Out + o], 1e-5);
    }

    /// <summary>An adapter folder's stand-in: the test tuner on one projection, or tensors replacing the base's.</summary>
    private sealed class TestAdapter(Func<ILinearTuner>? tuner, Dictionary<string, (long[] Shape, float[] Data)> replaced) : IModelAdapter
    {
        public string Directory => "test adapter";
        public string Describe() => "test adapter";
        public IReadOnlyList<ILinearTuner> CreateTuners(IComputeBackend backend) => tuner is null ? [] : [tuner()];
        public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> ReplacedTensors => replaced;
        public void ValidateAgainst(Func<string, long[]?> linearShape, Func<string, long[]?> tensorShape, string baseName) { }
    }

    [Fact]
    public void Inference_projection_applies_the_input_hook_as_the_weights_folding_it_in_would()
    {
        const string module = "model.layers.0.self_attn.q_proj";
        int[][] ids = [[3, 17, 250, 42, 9]], mask = [[1, 1, 1, 1, 1]];
        using var tuned = DecoderModel.LoadForGeneration(TestPaths.Fixtures("qwen2-small-vocab"));
        var config = tuned.Config;
        var tuner = new ScaleInputShiftOutputTuner(module, config.HiddenSize, config.QueryWidth, tuned.Backend);
        tuned.ApplyAdapter(new TestAdapter(() => tuner, []));

        // W·(x ⊙ l) + b + s = (W·diag(l))·x + (b + s)
        float[] weight, bias;
        using (var checkpoint = SafetensorsCheckpoint.OpenDirectory(TestPaths.Fixtures("qwen2-small-vocab")))
            (weight, bias) = (checkpoint.ReadFloat32(module + ".weight"), checkpoint.ReadFloat32(module + ".bias"));
        for (int o = 0; o < tuner.OutFeatures; o++)
        {
            for (int i = 0; i < tuner.InFeatures; i++) weight[o * tuner.InFeatures + i] *= tuner.Scale.Data[i];
            bias[o] += tuner.Shift.Data[o];
        }
        using var folded = DecoderModel.LoadForGeneration(TestPaths.Fixtures("qwen2-small-vocab"));
        folded.ApplyAdapter(new TestAdapter(null, new()
        {
            [module + ".weight"] = ([tuner.OutFeatures, tuner.InFeatures], weight),
            [module + ".bias"] = ([tuner.OutFeatures], bias),
        }));
        using var plain = DecoderModel.LoadForGeneration(TestPaths.Fixtures("qwen2-small-vocab"));

        var expected = folded.Evaluate(ids, mask).Logits;
        var actual = tuned.Evaluate(ids, mask).Logits;
        var untouched = plain.Evaluate(ids, mask).Logits;
        Assert.True(expected.Zip(untouched).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the tuner must change the logits");
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-4f);
    }
}
