namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's export (merge) arguments (defaults as in its hparams/model_args.py).</summary>
public sealed class ExportArguments
{
    /// <summary>export_dir: where the merged model is written, absolute; required for export.</summary>
    public string ExportDir { get; set; } = "";
    /// <summary>export_size: the largest shard, in GB.</summary>
    public int ExportSize { get; set; } = 5;
}
