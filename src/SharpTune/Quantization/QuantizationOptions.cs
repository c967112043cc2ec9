namespace SharpTune.Quantization;

/// <summary>bitsandbytes' 4-bit data types.</summary>
public enum FourBitType { Nf4, Fp4 }

/// <summary>
/// How frozen linear weights are quantised on load (LLaMA-Factory's quantization_bit, quantization_type,
/// double_quantization; method bnb): 4-bit NF4/FP4 with blockwise absmax (block 64) and optional double
/// quantisation of the absmax values, or 8-bit LLM.int8 row-wise absmax with outlier decomposition.
/// </summary>
public sealed record QuantizationOptions(int Bits, FourBitType Type = FourBitType.Nf4, bool DoubleQuantization = true)
{
    public override string ToString() => Bits == 8 ? "8-bit (LLM.int8)" : $"4-bit {Type.ToString().ToUpperInvariant()}{(DoubleQuantization ? " + double quantization" : "")}";
}
