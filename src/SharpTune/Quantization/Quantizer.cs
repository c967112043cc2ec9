using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>Quantises a frozen weight as LLaMA-Factory's bitsandbytes quantisation would (see <see cref="QuantizationOptions"/>).</summary>
public static class Quantizer
{
    /// <summary>
    /// 4-bit: <see cref="FourBitMatrix"/> (NF4/FP4, blocks of 64, optional double quantisation); 8-bit: <see cref="Int8Matrix"/>.
    /// With <paramref name="bf16Kernel"/> (<c>bf16: true</c>, LLaMA-Factory's compute_dtype bfloat16) the products run in bf16.
    /// </summary>
    public static IFrozenMatrix Quantize(WeightMatrix weight, QuantizationOptions options, OneDnnGemmKernel? bf16Kernel = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Bits switch
        {
            4 => FourBitMatrix.Quantize(weight, options.Type, options.DoubleQuantization, bf16Kernel),
            8 => Int8Matrix.Quantize(weight, bf16Kernel),
            _ => throw UnsupportedBits(options),
        };
    }

    /// <summary>Bytes the quantised form of a rows×cols weight keeps (what <see cref="Quantize"/> would return's StorageBytes).</summary>
    public static long StorageBytesFor(int rows, int cols, QuantizationOptions options) => options.Bits switch
    {
        4 => FourBitMatrix.StorageBytesFor(rows, cols, options.DoubleQuantization),
        8 => Int8Matrix.StorageBytesFor(rows, cols),
        _ => throw UnsupportedBits(options),
    };

    private static ArgumentException UnsupportedBits(QuantizationOptions options) =>
        new($"quantization bits must be 4 or 8, not {options.Bits}", nameof(options));
}
