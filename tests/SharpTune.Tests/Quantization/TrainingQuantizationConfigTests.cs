using SharpTune.Hparams;
using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

/// <summary>LLaMA-Factory's quantization keys: what they set, and what they refuse with the reason.</summary>
public sealed class TrainingQuantizationConfigTests
{
    private const string Model = "model_name_or_path: Qwen/Qwen2.5-0.5B\n";

    private static SftConfig Parse(string yaml) => SftConfig.Parse(yaml, [], Path.GetTempPath());

    private static string Error(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml)).Message;

    [Fact]
    public void Quantization_bit_4_defaults_to_nf4_with_double_quantization()
    {
        Assert.Null(Parse(Model).Model.Quantization);
        Assert.Equal(new QuantizationOptions(4, FourBitType.Nf4, DoubleQuantization: true), Parse(Model + "quantization_bit: 4\nquantization_method: bnb\n").Model.Quantization);
        Assert.Equal(new QuantizationOptions(4, FourBitType.Fp4, DoubleQuantization: false),
            Parse(Model + "quantization_bit: 4\nquantization_type: fp4\ndouble_quantization: false\n").Model.Quantization);
        Assert.Equal(8, Parse(Model + "quantization_bit: 8\nquantization_method: bitsandbytes\n").Model.Quantization!.Bits);
    }

    [Theory]
    [InlineData("quantization_bit: 3", "quantization_bit: bitsandbytes quantizes to 4 or 8 bits, got 3 (line 2 of config)")]
    [InlineData("quantization_type: int4", "quantization_type: expected one of nf4, fp4, got 'int4' (line 2 of config)")]
    [InlineData("quantization_method: gptq", "quantization_method 'gptq' is not supported: SharpTune quantizes with bitsandbytes' scheme only (bnb) (line 2 of config)")]
    [InlineData("quantization_method: hqq", "quantization_method 'hqq' is not supported: SharpTune quantizes with bitsandbytes' scheme only (bnb) (line 2 of config)")]
    [InlineData("quantization_method: eetq", "quantization_method 'eetq' is not supported: SharpTune quantizes with bitsandbytes' scheme only (bnb) (line 2 of config)")]
    [InlineData("quantization_bit: 4\nfinetuning_type: full", "quantization_bit: quantized weights cannot be trained, so finetuning_type full cannot use quantization; use finetuning_type: lora (QLoRA) (line 2 of config)")]
    [InlineData("quantization_bit: 8\nfinetuning_type: freeze", "quantization_bit: quantized weights cannot be trained, so finetuning_type freeze cannot use quantization; use finetuning_type: lora (QLoRA) (line 2 of config)")]
    public void Bad_quantization_settings_are_refused_with_the_reason(string yaml, string message) => Assert.Equal(message, Error(Model + yaml));
}
