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
public sealed unsafe class BottleneckLayer : ILinearTuner
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
    private float[] _h = [], _z = [], _a = [], _dz = [];

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

    public void Forward(float[] x, int rows, float[] y, TunerPass pass, SeededRandom? random)
    {
        int n = rows * OutFeatures, m = rows * Bottleneck;
        if (_z.Length < m) { _z = new float[m]; _a = new float[m]; }
        if (pass != TunerPass.Evaluate)
        {
            if (_h.Length < n) _h = new float[n];
            y.AsSpan(0, n).CopyTo(_h);
        }
        fixed (float* py = y, pd = DownWeight.Data, pu = UpWeight.Data, pz = _z, pa = _a)
        {
            _backend.Gemm.Sgemm(false, true, rows, Bottleneck, OutFeatures, 1f, py, OutFeatures, pd, OutFeatures, 0f, pz, Bottleneck);
            _backend.AddBias(_z, rows, DownBias.Data);
            for (int i = 0; i < m; i++) pa[i] = Activate(pz[i]);
            // y += s·(a·Uᵀ + u): y already holds h, the adapter's residual.
            _backend.Gemm.Sgemm(false, true, rows, OutFeatures, Bottleneck, Scaling, pa, Bottleneck, pu, Bottleneck, 1f, py, OutFeatures);
        }
        if (Scaling == 1f) _backend.AddBias(y, rows, UpBias.Data);
        else _backend.AddBias(y, rows, UpBias.Data.Select(b => Scaling * b).ToArray());
    }

    /// <summary>dL/dz [rows × bottleneck] for dy, from the kept pre-activations: (s·dy·U) ⊙ act'(z).</summary>
    private float[] BottleneckGradient(float[] dy, int rows)
    {
        int m = rows * Bottleneck;
        if (_dz.Length < m) _dz = new float[m];
        fixed (float* pdy = dy, pu = UpWeight.Data, pdz = _dz)
            _backend.Gemm.Sgemm(false, false, rows, Bottleneck, OutFeatures, Scaling, pdy, OutFeatures, pu, Bottleneck, 0f, pdz, Bottleneck);
        for (int i = 0; i < m; i++) _dz[i] *= Derivative(_z[i]);
        return _dz;
    }

    /// <summary>dL/dh = dy (the residual) + dz·D.</summary>
    public void OutputGradient(float[] dy, int rows, float[] dyBefore)
    {
        var dz = BottleneckGradient(dy, rows);
        dy.AsSpan(0, rows * OutFeatures).CopyTo(dyBefore);
        fixed (float* pdz = dz, pd = DownWeight.Data, pb = dyBefore)
            _backend.Gemm.Sgemm(false, false, rows, OutFeatures, Bottleneck, 1f, pdz, Bottleneck, pd, OutFeatures, 1f, pb, OutFeatures);
    }

    /// <summary>The four parameters' gradients from dy; x's share comes through the projection (<see cref="OutputGradient"/>).</summary>
    public void Backward(float[] x, float[] dy, int rows, float[]? dx)
    {
        // _z and _a hold this dy's forward (gradient checkpointing's recompute refills them before the backward).
        var dz = BottleneckGradient(dy, rows);
        fixed (float* pdy = dy, pa = _a, pdu = UpWeight.Grad, pdz = dz, ph = _h, pdd = DownWeight.Grad)
        {
            _backend.Gemm.Sgemm(true, false, OutFeatures, Bottleneck, rows, Scaling, pdy, OutFeatures, pa, Bottleneck, 1f, pdu, Bottleneck);
            _backend.Gemm.Sgemm(true, false, Bottleneck, OutFeatures, rows, 1f, pdz, Bottleneck, ph, OutFeatures, 1f, pdd, OutFeatures);
        }
        var upBias = new float[OutFeatures];
        _backend.ColumnSums(dy, rows, upBias);
        for (int o = 0; o < OutFeatures; o++) UpBias.Grad[o] += Scaling * upBias[o];
        _backend.ColumnSums(dz, rows, DownBias.Grad);
    }

    public void MergeInto(float[] weight, float[]? bias) => throw new NotSupportedException(BottleneckAdapter.MergeRefusalText);

    public void UnmergeFrom(float[] weight, float[]? bias) => throw new NotSupportedException(BottleneckAdapter.MergeRefusalText);

    private float Activate(float z) => Activation == BottleneckActivation.Relu ? MathF.Max(z, 0f) : z / (1f + MathF.Exp(-z));

    private float Derivative(float z)
    {
        if (Activation == BottleneckActivation.Relu) return z > 0f ? 1f : 0f;
        float sigmoid = 1f / (1f + MathF.Exp(-z));
        return sigmoid * (1f + z * (1f - sigmoid));
    }
}

/// <summary>The adapters library's non_linearity values SharpTune implements (transformers' activations of those names).</summary>
public enum BottleneckActivation
{
    /// <summary>"swish": x·σ(x) (SiLU), the Houlsby config's default.</summary>
    Swish,
    /// <summary>"relu".</summary>
    Relu,
}
