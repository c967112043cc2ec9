using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>Quantises the layer projections of a memory-mapped checkpoint for QLoRA training and quantised inference.</summary>
public static class MappedQuantization
{
    /// <summary>
    /// The quantised form of a matrix viewed in the mapped checkpoint; the pages it was read from are then released,
    /// so the process keeps the quantised copy resident instead of both.
    /// </summary>
    public static unsafe IFrozenMatrix Quantize(WeightMatrix stored, QuantizationOptions options)
    {
        var quantized = Quantizer.Quantize(stored, options);
        MappedPages.Release(stored.Data, (long)stored.Rows * stored.Cols * DTypeInfo.SizeOf(stored.DType));
        return quantized;
    }
}
