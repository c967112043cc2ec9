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

    /// <summary>Input side: x ⊙ l, the input the base saw. Output side: y before scaling, kept by a training pass.</summary>
    private float[] _scaledInput = [], _unscaledOutput = [];

    public Ia3Layer(string modulePath, int inFeatures, int outFeatures, bool isFeedforward, float[] l)
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
    }

    /// <summary>PEFT's init_ia3_weights: every entry 1, so the new layer leaves the Linear as it was.</summary>
    public static Ia3Layer CreateNew(string modulePath, int inFeatures, int outFeatures, bool isFeedforward) =>
        new(modulePath, inFeatures, outFeatures, isFeedforward, Enumerable.Repeat(1f, isFeedforward ? inFeatures : outFeatures).ToArray());

    public bool TransformsInput => IsFeedforward;

    public bool TransformsOutput => !IsFeedforward;

    public float[] TransformInput(float[] x, int rows, TunerPass pass)
    {
        int n = rows * InFeatures;
        if (_scaledInput.Length != n) _scaledInput = new float[n];
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.Multiply(x.AsSpan(r * InFeatures, InFeatures), L.Data, _scaledInput.AsSpan(r * InFeatures, InFeatures));
        return _scaledInput;
    }

    public void TransformInputBackward(float[] x, float[] dInput, int rows, float[] dx)
    {
        var grad = L.Grad;
        for (int r = 0; r < rows; r++)
        {
            var xr = x.AsSpan(r * InFeatures, InFeatures);
            var dr = dInput.AsSpan(r * InFeatures, InFeatures);
            for (int i = 0; i < InFeatures; i++) grad[i] += xr[i] * dr[i];
            System.Numerics.Tensors.TensorPrimitives.Multiply(dr, L.Data, dx.AsSpan(r * InFeatures, InFeatures));
        }
    }

    public void Forward(float[] x, int rows, float[] y, TunerPass pass, SeededRandom? random)
    {
        if (IsFeedforward) return;
        int n = rows * OutFeatures;
        if (pass != TunerPass.Evaluate)
        {
            if (_unscaledOutput.Length < n) _unscaledOutput = new float[n];
            y.AsSpan(0, n).CopyTo(_unscaledOutput);
        }
        for (int r = 0; r < rows; r++)
        {
            var yr = y.AsSpan(r * OutFeatures, OutFeatures);
            System.Numerics.Tensors.TensorPrimitives.Multiply(yr, L.Data, yr);
        }
    }

    public void OutputGradient(float[] dy, int rows, float[] dyBefore)
    {
        for (int r = 0; r < rows; r++)
            System.Numerics.Tensors.TensorPrimitives.Multiply(dy.AsSpan(r * OutFeatures, OutFeatures), L.Data, dyBefore.AsSpan(r * OutFeatures, OutFeatures));
    }

    /// <summary>Output side: dl = Σ over rows of (y before scaling) ⊙ dy; the input side's gradient comes from <see cref="TransformInputBackward"/>.</summary>
    public void Backward(float[] x, float[] dy, int rows, float[]? dx)
    {
        if (IsFeedforward) return;
        var grad = L.Grad;
        for (int r = 0; r < rows; r++)
        {
            var yr = _unscaledOutput.AsSpan(r * OutFeatures, OutFeatures);
            var dr = dy.AsSpan(r * OutFeatures, OutFeatures);
            for (int o = 0; o < OutFeatures; o++) grad[o] += yr[o] * dr[o];
        }
    }

    /// <summary>PEFT's IA3 merge: rows of W and the bias times l (output side), or columns of W times l (input side).</summary>
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
