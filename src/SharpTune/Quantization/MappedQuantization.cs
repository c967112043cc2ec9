using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>Quantises the layer projections of a memory-mapped checkpoint for QLoRA training and quantised inference.</summary>
public static class MappedQuantization
{
    /// <summary>
    /// The quantised form of a matrix viewed in the mapped checkpoint; the pages it was read from are then released,
    /// so the process keeps the quantised copy resident instead of both. With <paramref name="bf16Kernel"/> its
    /// products run in bf16 (<see cref="Quantizer.Quantize"/>).
    /// </summary>
    public static unsafe IFrozenMatrix Quantize(WeightMatrix stored, QuantizationOptions options, OneDnnGemmKernel? bf16Kernel = null)
    {
        var quantized = Quantizer.Quantize(stored, options, bf16Kernel);
        MappedPages.Release(stored.Data, (long)stored.Rows * stored.Cols * DTypeInfo.SizeOf(stored.DType));
        return quantized;
    }
}
