namespace SharpTune.Engine;

/// <summary>
/// A dense float32 activation tensor in row-major order, as a handle: the backend that allocated it
/// (<see cref="IComputeBackend.Allocate"/>) owns its storage, and every operation on it, reads and writes from the
/// host included (<see cref="IComputeBackend.CopyToHost"/>, <see cref="IComputeBackend.CopyFromHost"/>), is a call on
/// that backend. Buffers are sized once and reused across passes; kernels address rows from the start, so a smaller
/// batch uses a prefix.
/// </summary>
public abstract class Tensor
{
    /// <summary>Only backends make tensors (the CPU backend's wraps a host array no other code can reach).</summary>
    private protected Tensor(int[] shape)
    {
        long length = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            length *= d;
        }
        if (length > Array.MaxLength) throw new ArgumentException($"tensor of shape [{string.Join(", ", shape)}] is too large");
        Shape = (int[])shape.Clone();
        Length = (int)length;
    }

    public int[] Shape { get; }

    /// <summary>Values the tensor holds.</summary>
    public int Length { get; }

    /// <summary>Size of the last dimension: the row width when the tensor is seen as a matrix of rows.</summary>
    public int RowWidth => Shape[^1];
}
