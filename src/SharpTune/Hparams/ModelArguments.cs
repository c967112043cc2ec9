namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's model arguments that SharpTune uses (YAML keys in snake_case).</summary>
public sealed class ModelArguments
{
    /// <summary>model_name_or_path: a local Hugging Face model folder.</summary>
    public string ModelNameOrPath { get; set; } = "";

    /// <summary>adapter_name_or_path: comma-separated adapter folders applied on top of the base, in order.</summary>
    public List<string> AdapterNameOrPath { get; set; } = [];
}
