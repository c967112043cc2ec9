namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's model arguments that SharpTune uses (defaults as in its hparams/model_args.py).</summary>
public sealed class ModelArguments
{
    /// <summary>
    /// model_name_or_path: a local Hugging Face model folder, made absolute against the working directory when it
    /// exists; anything else is kept as written (a Hub id, which <see cref="SftConfig.Validate"/> refuses).
    /// </summary>
    public string ModelNameOrPath { get; set; } = "";

    /// <summary>adapter_name_or_path: comma-separated adapter folders applied on top of the base, in order (resolved as above).</summary>
    public List<string> AdapterNameOrPath { get; set; } = [];

    /// <summary>
    /// disable_gradient_checkpointing: LLaMA-Factory checkpoints activations unless this is true;
    /// <see cref="TrainingArguments.GradientCheckpointing"/> holds the resulting choice.
    /// </summary>
    public bool DisableGradientCheckpointing { get; set; }
}
