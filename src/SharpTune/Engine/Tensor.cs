namespace SharpTune.Engine;

/// <summary>
/// A dense float32 activation tensor in row-major order. Its storage is a host array sized once,
/// so buffers can be allocated up front and reused across forward passes.
/// </summary>
public sealed class Tensor
{
    public int[] Shape { get; }
    public float[] Data { get; }

    public Tensor(params int[] shape)
    {
        Shape = (int[])shape.Clone();
        long length = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            length *= d;
        }
        if (length > Array.MaxLength) throw new ArgumentException($"tensor of shape [{string.Join(", ", shape)}] is too large");
        Data = new float[length];
    }

    public Tensor(float[] data, params int[] shape)
    {
        long length = 1;
        foreach (int d in shape) length *= d;
        if (length != data.Length)
            throw new ArgumentException($"data length {data.Length} does not match shape [{string.Join(", ", shape)}]");
        Shape = (int[])shape.Clone();
        Data = data;
    }

    public int Length => Data.Length;

    /// <summary>Size of the last dimension: the row width when the tensor is seen as a matrix of rows.</summary>
    public int RowWidth => Shape[^1];

    public Span<float> Span => Data;

    public Span<float> Row(int r) => Data.AsSpan(r * RowWidth, RowWidth);
}
