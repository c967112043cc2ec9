using SharpTune.Engine;

namespace SharpTune.Tests.Engine;

/// <summary>Moves test data onto a backend and back, through the backend's transfer calls as model code does.</summary>
internal static class BackendTensors
{
    /// <summary>A [rows × width] tensor of the backend holding values.</summary>
    public static Tensor FromHost(this IComputeBackend backend, float[] values, int rows, int width)
    {
        var tensor = backend.Allocate(rows, width);
        backend.CopyFromHost(values, tensor, 0);
        return tensor;
    }

    /// <summary>Every value of the tensor, read back.</summary>
    public static float[] ToHost(this IComputeBackend backend, Tensor tensor)
    {
        var values = new float[tensor.Length];
        backend.CopyToHost(tensor, 0, values);
        return values;
    }
}
