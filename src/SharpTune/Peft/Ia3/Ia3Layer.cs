using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Training;

namespace SharpTune.Peft.Ia3;

/// <summary>
/// PEFT's IA3 layer on one Linear: a learned vector ia3_l that scales the Linear's output, bias included
/// (y ⊙ l, l [out, 1]: attention projections), or, on a feed-forward module, its input (W·(x ⊙ l) + b, l [1, in]).
/// The same object trains (an output-side l keeps the y it scaled for its gradient), serves unmerged and merges
/// (output side: each weight row and bias entry times l; input side: each weight column times l).
/// Not thread-safe: its buffers belong to this instance, like the model's own workspace.
/// </summary>
public sealed class Ia3Layer : ILinearTuner
{
    public string ModulePath { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    /// <summary>True when l scales the input (a feed-forward module), false when it scales the output.</summary>
    public bool IsFeedforward { get; }
    /// <summary>ia3_l: [1, in] on a feed-forward module, [out, 1] otherwise.</summary>
    public Parameter L { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    private readonly IComputeBackend _backend;
    /// <summary>Input side: x ⊙ l, the input the base saw. Output side: y before scaling, kept by a training pass.</summary>
    private Tensor _scaledInput, _unscaledOutput;

    public Ia3Layer(string modulePath, int inFeatures, int outFeatures, bool isFeedforward, float[] l, IComputeBackend backend)
    {
        int length = isFeedforward ? inFeatures : outFeatures;
        if (l.Length != length)
            throw new ArgumentException($"{modulePath}: ia3_l has {l.Length} values, {(isFeedforward ? "a feed-forward module's input" : "the output")} has {length}");
        ModulePath = modulePath;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        IsFeedforward = isFeedforward;
        L = new Parameter(Ia3AdapterFile.Key(modulePath), isFeedforward ? [1, inFeatures] : [outFeatures, 1], l);
        Parameters = [L];
        _backend = backend;
        _scaledInput = _unscaledOutput = backend.Allocate(0, 0);
    }

    /// <summary>PEFT's init_ia3_weights: every entry 1, so the new layer leaves the Linear as it was.</summary>
    public static Ia3Layer CreateNew(string modulePath, int inFeatures, int outFeatures, bool isFeedforward, IComputeBackend backend) =>
        new(modulePath, inFeatures, outFeatures, isFeedforward, Enumerable.Repeat(1f, isFeedforward ? inFeatures : outFeatures).ToArray(), backend);

    public bool TransformsInput => IsFeedforward;

    public bool TransformsOutput => !IsFeedforward;

    public Tensor TransformInput(Tensor x, int rows, TunerPass pass)
    {
        int n = rows * InFeatures;
        if (_scaledInput.Length != n) _scaledInput = _backend.Allocate(rows, InFeatures);
        _backend.ScaleColumns(x, rows, L.Data, _scaledInput);
        return _scaledInput;
    }

    public void TransformInputBackward(Tensor x, Tensor dInput, int rows, Tensor dx)
    {
        _backend.AddColumnProducts(x, dInput, rows, L.Grad);
        _backend.ScaleColumns(dInput, rows, L.Data, dx);
    }

    public void Forward(Tensor x, int rows, Tensor y, TunerPass pass, SeededRandom? random)
    {
        if (IsFeedforward) return;
        int n = rows * OutFeatures;
        if (pass != TunerPass.Evaluate)
        {
            if (_unscaledOutput.Length < n) _unscaledOutput = _backend.Allocate(rows, OutFeatures);
            _backend.CopyRows(y, 0, _unscaledOutput, 0, rows);
        }
        _backend.ScaleColumns(y, rows, L.Data, y);
    }

    public void OutputGradient(Tensor dy, int rows, Tensor dyBefore) => _backend.ScaleColumns(dy, rows, L.Data, dyBefore);

    /// <summary>Output side: dl = Σ over rows of (y before scaling) ⊙ dy; the input side's gradient comes from <see cref="TransformInputBackward"/>.</summary>
    public void Backward(Tensor x, Tensor dy, int rows, Tensor? dx)
    {
        if (IsFeedforward) return;
        _backend.AddColumnProducts(_unscaledOutput, dy, rows, L.Grad);
    }

    public void MergeInto(float[] weight, float[]? bias) => Scale(weight, bias, L.Data);

    /// <summary>PEFT's unmerge: divides by l + 1e-8 (its guard against a zero entry), so it is exact only up to that and rounding.</summary>
    public void UnmergeFrom(float[] weight, float[]? bias) => Scale(weight, bias, L.Data.Select(v => 1f / (v + 1e-8f)).ToArray());

    private void Scale(float[] weight, float[]? bias, float[] factors)
    {
        if (weight.Length != (long)OutFeatures * InFeatures)
            throw new ArgumentException($"{ModulePath}: weight has {weight.Length} values, the IA3 layer wraps a [{OutFeatures}, {InFeatures}] Linear");
        for (int o = 0; o < OutFeatures; o++)
        {
            var row = weight.AsSpan(o * InFeatures, InFeatures);
            if (IsFeedforward) System.Numerics.Tensors.TensorPrimitives.Multiply(row, factors, row);
            else System.Numerics.Tensors.TensorPrimitives.Multiply(row, factors[o], row);
        }
        if (IsFeedforward || bias is null) return;
        if (bias.Length != OutFeatures) throw new ArgumentException($"{ModulePath}: bias has {bias.Length} values, the Linear has {OutFeatures} outputs");
        System.Numerics.Tensors.TensorPrimitives.Multiply(bias, factors, bias);
    }

    /// <summary>Bytes an IA3 layer keeps for a training batch of <paramref name="rows"/> rows: the input or the output it scaled.</summary>
    public static long CacheBytes(int rows, int inFeatures, int outFeatures, bool isFeedforward) =>
        sizeof(float) * (long)rows * (isFeedforward ? inFeatures : outFeatures);
}
