using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training;

namespace SharpTune.Peft.Bottleneck;

/// <summary>
/// A Houlsby bottleneck adapter as the adapters library places it on a pre-norm decoder (Qwen2, LLaMA): a forward
/// hook on the attention's o_proj (mh_adapter) and on the MLP's down_proj (output_adapter), before the layer's
/// residual add, computing h ← h + s·(act(h·Dᵀ + d)·Uᵀ + u) on the projection's output h (D [bottleneck × hidden], U
/// [hidden × bottleneck]). That is exactly an output-side tuner of that Linear, so it is one. It is not a weight
/// change, so it cannot be merged. Not thread-safe: its buffers belong to this instance.
/// </summary>
public sealed class BottleneckLayer : ILinearTuner
{
    public string ModulePath { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public int Bottleneck { get; }
    public BottleneckActivation Activation { get; }
    public float Scaling { get; }
    public Parameter DownWeight { get; }
    public Parameter DownBias { get; }
    public Parameter UpWeight { get; }
    public Parameter UpBias { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    private readonly IComputeBackend _backend;
    /// <summary>A training pass keeps h (the projection's output) and the bottleneck's pre-activation z for the backward.</summary>
    private Tensor _h, _z, _a, _dz;

    /// <param name="keyPrefix">The adapters library's key of this adapter block, e.g. model.layers.0.attention_adapters.adapters.NAME.</param>
    public BottleneckLayer(string modulePath, int inFeatures, int outFeatures, string keyPrefix, BottleneckActivation activation, float scaling,
        float[] downWeight, float[] downBias, float[] upWeight, float[] upBias, IComputeBackend backend)
    {
        int bottleneck = downBias.Length;
        if (downWeight.Length != bottleneck * outFeatures || upWeight.Length != outFeatures * bottleneck || upBias.Length != outFeatures)
            throw new ArgumentException($"{keyPrefix}: adapter_down [{bottleneck}, ?] and adapter_up do not fit a projection of {outFeatures} outputs");
        ModulePath = modulePath;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Bottleneck = bottleneck;
        Activation = activation;
        Scaling = scaling;
        DownWeight = new Parameter(BottleneckAdapterFile.DownWeightKey(keyPrefix), [bottleneck, outFeatures], downWeight);
        DownBias = new Parameter(BottleneckAdapterFile.DownBiasKey(keyPrefix), [bottleneck], downBias);
        UpWeight = new Parameter(BottleneckAdapterFile.UpWeightKey(keyPrefix), [outFeatures, bottleneck], upWeight);
        UpBias = new Parameter(BottleneckAdapterFile.UpBiasKey(keyPrefix), [outFeatures], upBias);
        Parameters = [DownWeight, DownBias, UpWeight, UpBias];
        _backend = backend;
        _h = _z = _a = _dz = backend.Allocate(0, 0);
    }

    /// <summary>The library's init_weights "bert": both weights normal(0, 0.02), both biases zero.</summary>
    public static BottleneckLayer CreateNew(string modulePath, int inFeatures, int outFeatures, string keyPrefix, int bottleneck,
        BottleneckActivation activation, SeededRandom random, IComputeBackend backend)
    {
        float[] Normal(int n) => Enumerable.Range(0, n).Select(_ => (float)(0.02 * random.NextGaussian())).ToArray();
        var down = Normal(bottleneck * outFeatures);
        var up = Normal(outFeatures * bottleneck);
        return new BottleneckLayer(modulePath, inFeatures, outFeatures, keyPrefix, activation, 1f, down, new float[bottleneck], up, new float[outFeatures], backend);
    }

    public bool TransformsOutput => true;

    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        int m = rows * Bottleneck;
        if (_z.Length < m)
        {
            _z = _backend.Allocate(rows, Bottleneck);
            _a = _backend.Allocate(rows, Bottleneck);
        }
        if (pass != TunerPass.Evaluate)
        {
            if (_h.Length < rows * OutFeatures) _h = _backend.Allocate(rows, OutFeatures);
            _backend.CopyRows(y, 0, _h, 0, rows);
        }
        _backend.MultiplyTransposed(y, rows, OutFeatures, DownWeight.Data, Bottleneck, 1f, 0f, _z);
        _backend.AddBias(_z, rows, DownBias.Data);
        _backend.Activate(Function, _z, m, _a);
        // y += s·(a·Uᵀ + u): y already holds h, the adapter's residual.
        _backend.MultiplyTransposed(_a, rows, Bottleneck, UpWeight.Data, OutFeatures, Scaling, 1f, y);
        if (Scaling == 1f) _backend.AddBias(y, rows, UpBias.Data);
        else _backend.AddBias(y, rows, UpBias.Data.Select(b => Scaling * b).ToArray());
    }

    /// <summary>dL/dz [rows × bottleneck] for dy, from the kept pre-activations: (s·dy·U) ⊙ act'(z).</summary>
    private Tensor BottleneckGradient(Tensor dy, int rows)
    {
        int m = rows * Bottleneck;
        if (_dz.Length < m) _dz = _backend.Allocate(rows, Bottleneck);
        _backend.Multiply(dy, rows, OutFeatures, UpWeight.Data, Bottleneck, Scaling, 0f, _dz);
        _backend.MultiplyByDerivative(Function, _z, m, _dz);
        return _dz;
    }

    /// <summary>dL/dh = dy (the residual) + dz·D.</summary>
    public void OutputGradient(Tensor dy, int rows, Tensor dyBefore)
    {
        var dz = BottleneckGradient(dy, rows);
        _backend.CopyRows(dy, 0, dyBefore, 0, rows);
        _backend.Multiply(dz, rows, Bottleneck, DownWeight.Data, OutFeatures, 1f, 1f, dyBefore);
    }

    /// <summary>The four parameters' gradients from dy; x's share comes through the projection (<see cref="OutputGradient"/>).</summary>
    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx)
    {
        // _z and _a hold this dy's forward (gradient checkpointing's recompute refills them before the backward).
        var dz = BottleneckGradient(dy, rows);
        _backend.AddOuterProducts(dy, _a, rows, OutFeatures, Bottleneck, Scaling, UpWeight.Grad);
        _backend.AddOuterProducts(dz, _h, rows, Bottleneck, OutFeatures, 1f, DownWeight.Grad);
        var upBias = new float[OutFeatures];
        _backend.ColumnSums(dy, rows, upBias);
        for (int o = 0; o < OutFeatures; o++) UpBias.Grad[o] += Scaling * upBias[o];
        _backend.ColumnSums(dz, rows, DownBias.Grad);
    }

    public void MergeInto(float[] weight, float[]? bias) => throw new NotSupportedException(BottleneckAdapter.MergeRefusalText);

    public void UnmergeFrom(float[] weight, float[]? bias) => throw new NotSupportedException(BottleneckAdapter.MergeRefusalText);

    private ActivationFunction Function => Activation == BottleneckActivation.Relu ? ActivationFunction.Relu : ActivationFunction.Swish;
}

/// <summary>The adapters library's non_linearity values SharpTune implements (transformers' activations of those names).</summary>
public enum BottleneckActivation
{
    /// <summary>"swish": x·σ(x) (SiLU), the Houlsby config's default.</summary>
    Swish,
    /// <summary>"relu".</summary>
    Relu,
}
