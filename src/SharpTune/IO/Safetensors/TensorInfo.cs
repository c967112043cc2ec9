using SharpTune.Engine;

namespace SharpTune.IO.Safetensors;

/// <summary>
/// One tensor of a safetensors file. <see cref="Begin"/> and <see cref="End"/> are byte offsets relative to the
/// start of the data section (the byte after the header), exactly as stored in <c>data_offsets</c>.
/// </summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Product of the shape (1 for a scalar, whose shape is empty).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n = checked(n * d);
            return n;
        }
    }

    public long ByteSize => End - Begin;

    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}] @[{Begin}, {End})";
}
