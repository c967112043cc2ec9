namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's export (merge) arguments.</summary>
public sealed class ExportArguments
{
    public string ExportDir { get; set; } = "";
    /// <summary>export_size: the largest shard, in GB.</summary>
    public int ExportSize { get; set; } = 5;
    /// <summary>export_legacy_format: write pytorch_model.bin instead of safetensors — SharpTune only writes safetensors.</summary>
    public bool ExportLegacyFormat { get; set; }
}
