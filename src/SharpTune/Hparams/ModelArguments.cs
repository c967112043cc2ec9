using SharpTune.Quantization;

namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's model arguments that SharpTune uses (defaults as in its hparams/model_args.py).</summary>
public sealed class ModelArguments
{
    /// <summary>
    /// model_name_or_path: a local Hugging Face model folder, made absolute against the working directory when it
    /// exists; else a Hub id becomes its snapshot's folder in the Hugging Face cache (downloaded by SftConfig.Load when absent) (the id is kept in
    /// <see cref="HubId"/>); anything else is kept as written (which <see cref="SftConfig.Validate"/> refuses).
    /// </summary>
    public string ModelNameOrPath { get; set; } = "";

    /// <summary>The Hub id model_name_or_path named, when it was resolved through the cache; null for a folder.</summary>
    public string? HubId { get; set; }

    /// <summary>model_revision: the branch, tag or commit of a Hub id looked up in the cache.</summary>
    public string ModelRevision { get; set; } = "main";

    /// <summary>adapter_name_or_path: comma-separated adapter folders applied on top of the base, in order (resolved as above).</summary>
    public List<string> AdapterNameOrPath { get; set; } = [];

    /// <summary>
    /// disable_gradient_checkpointing: LLaMA-Factory checkpoints activations unless this is true;
    /// <see cref="TrainingArguments.GradientCheckpointing"/> holds the resulting choice.
    /// </summary>
    public bool DisableGradientCheckpointing { get; set; }

    /// <summary>quantization_bit: 4 or 8 quantises the frozen projections on load (with LoRA, QLoRA); null keeps them as stored.</summary>
    public int? QuantizationBit { get; set; }

    /// <summary>quantization_type: the 4-bit data type, nf4 (LLaMA-Factory's default) or fp4.</summary>
    public FourBitType QuantizationType { get; set; } = FourBitType.Nf4;

    /// <summary>double_quantization: quantise the 4-bit absmax values too (LLaMA-Factory's default true).</summary>
    public bool DoubleQuantization { get; set; } = true;

    /// <summary>What quantization_bit, quantization_type and double_quantization ask for, or null without quantization_bit.</summary>
    public QuantizationOptions? Quantization =>
        QuantizationBit is { } bits ? new QuantizationOptions(bits, QuantizationType, DoubleQuantization) : null;
}
