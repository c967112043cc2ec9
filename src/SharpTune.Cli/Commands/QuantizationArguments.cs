using System.CommandLine;
using SharpTune.Quantization;

namespace SharpTune.Cli.Commands;

/// <summary>The load-time quantization options shared by chat, generate and api.</summary>
public sealed class QuantizationArguments
{
    public Option<int?> QuantizationBit { get; } = new("--quantization-bit") { Description = "Quantize the layers' projections on load: 4 (NF4/FP4) or 8 (LLM.int8), as QLoRA trains them; adapters stay unmerged on top" };
    public Option<string> QuantizationType { get; } = new("--quantization-type") { Description = "4-bit data type: nf4 or fp4", DefaultValueFactory = _ => "nf4" };
    public Option<bool> NoDoubleQuantization { get; } = new("--no-double-quantization") { Description = "Keep the 4-bit block scales in fp32 instead of quantizing them too" };

    public void AddTo(Command c)
    {
        c.Options.Add(QuantizationBit);
        c.Options.Add(QuantizationType);
        c.Options.Add(NoDoubleQuantization);
    }

    /// <summary>The quantization asked for, or null without --quantization-bit.</summary>
    public QuantizationOptions? Read(ParseResult r)
    {
        string type = r.GetValue(QuantizationType)!;
        if (type is not ("nf4" or "fp4")) throw new ArgumentException($"--quantization-type must be nf4 or fp4, not '{type}'");
        return r.GetValue(QuantizationBit) switch
        {
            null => null,
            int bits when bits is 4 or 8 => new QuantizationOptions(bits, type == "fp4" ? FourBitType.Fp4 : FourBitType.Nf4, !r.GetValue(NoDoubleQuantization)),
            int other => throw new ArgumentException($"--quantization-bit must be 4 or 8, not {other}"),
        };
    }
}
