namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's data arguments (defaults as in its hparams/data_args.py).</summary>
public sealed class DataArguments
{
    /// <summary>template: a name from ChatTemplates, or null to read the model's tokenizer_config.json.</summary>
    public string? Template { get; set; }
    /// <summary>dataset: names registered in dataset_info.json, comma-separated.</summary>
    public List<string> Dataset { get; set; } = [];
    public List<string> EvalDataset { get; set; } = [];
    public string DatasetDir { get; set; } = "data";
    public int CutoffLen { get; set; } = 2048;
    public bool TrainOnPrompt { get; set; }
    public bool MaskHistory { get; set; }
    public int? MaxSamples { get; set; }
    /// <summary>val_size: a fraction in (0, 1) or an absolute number of examples (≥ 1) held out for evaluation.</summary>
    public double ValSize { get; set; }
    public bool Packing { get; set; }
    public string? DefaultSystem { get; set; }
    public string? ToolFormat { get; set; }
    /// <summary>Lenient data loading: skip malformed records with a report instead of stopping at the first one.</summary>
    public bool SkipInvalidRecords { get; set; }
}
