using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// A decoder Linear's weight and bias as the tuners on it read them (<see cref="ILinearBase"/>). The weight tensor is
/// read when asked, so a later merge or replacement of its values is what the tuner sees.
/// </summary>
public sealed class BaseLinear(ModelTensor weight, ModelTensor? bias, IComputeBackend backend) : ILinearBase
{
    public int InFeatures => weight.Shape[1];
    public int OutFeatures => weight.Shape[0];
    public float[]? Bias => bias?.Data;

    public void ReadWeightRows(int firstRow, int count, Span<float> destination)
    {
        if (weight.Frozen is { } frozen) frozen.ReadRows(firstRow, count, destination);
        else weight.Data.AsSpan(firstRow * InFeatures, count * InFeatures).CopyTo(destination);
    }

    public void Multiply(Tensor x, int rows, Tensor y)
    {
        if (weight.Frozen is { } frozen) backend.Linear(x, rows, frozen, bias: null, y);
        else backend.Linear(x, rows, weight.Data, InFeatures, OutFeatures, bias: null, y);
    }

    public void AddInputGradient(Tensor dy, int rows, Tensor dx)
    {
        if (weight.Frozen is { } frozen) backend.LinearInputGradient(dy, rows, frozen, dx, accumulate: true);
        else backend.LinearBackward(dy, dy, rows, weight.Data, InFeatures, OutFeatures, weightGrad: null, biasGrad: null, dx, accumulate: true);
    }
}
