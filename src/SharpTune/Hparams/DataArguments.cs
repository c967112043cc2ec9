namespace SharpTune.Hparams;

/// <summary>LLaMA-Factory's data arguments (defaults as in its hparams/data_args.py).</summary>
public sealed class DataArguments
{
    /// <summary>template: a name from ChatTemplates, "auto", or null; null and "auto" read the model's tokenizer_config.json.</summary>
    public string? Template { get; set; }
    /// <summary>dataset: names registered in dataset_info.json (comma-separated in YAML).</summary>
    public List<string> Dataset { get; set; } = [];
    /// <summary>eval_dataset: names registered in dataset_info.json, evaluated instead of a val_size split.</summary>
    public List<string> EvalDataset { get; set; } = [];
    /// <summary>dataset_dir: the folder holding dataset_info.json, absolute (relative values resolve against the working directory).</summary>
    public string DatasetDir { get; set; } = "data";
    /// <summary>
    /// cutoff_len: the longest tokenized example. With packing LLaMA-Factory lowers the configured value by one
    /// (data_args.__post_init__); this property already holds the lowered value.
    /// </summary>
    public int CutoffLen { get; set; } = 2048;
    public bool TrainOnPrompt { get; set; }
    public bool MaskHistory { get; set; }
    /// <summary>max_samples: keep at most this many examples of each dataset; null keeps all.</summary>
    public int? MaxSamples { get; set; }
    /// <summary>val_size: a fraction in (0, 1) or a whole number of examples (≥ 1) held out for evaluation; 0 holds none.</summary>
    public double ValSize { get; set; }
    /// <summary>
    /// packing: concatenate examples into cutoff_len sequences. Unset, LLaMA-Factory enables it for stage pt only; this
    /// property holds the value in effect.
    /// </summary>
    public bool Packing { get; set; }
    /// <summary>
    /// neat_packing: packed examples attend only within themselves (block-diagonal attention, positions restarting per
    /// example); turns packing on, as LLaMA-Factory's parser does.
    /// </summary>
    public bool NeatPacking { get; set; }
    /// <summary>preprocessing_batch_size: records processed as one group (stage pt packs each group on its own).</summary>
    public int PreprocessingBatchSize { get; set; } = 1000;
    /// <summary>default_system: replaces the template's default system prompt.</summary>
    public string? DefaultSystem { get; set; }
    /// <summary>tool_format: the tool-call format name that replaces the template's own.</summary>
    public string? ToolFormat { get; set; }
    /// <summary>
    /// skip_invalid_records (SharpTune's own key, not LLaMA-Factory's): skip malformed dataset records and report
    /// how many were skipped, instead of stopping at the first one. Default false, which matches LLaMA-Factory's
    /// strictness.
    /// </summary>
    public bool SkipInvalidRecords { get; set; }
    /// <summary>
    /// Not a config key: a server or web board that loads datasets for others sets this root, and then dataset_dir
    /// and every data file must resolve inside it (see <see cref="Data.DatasetRegistry.Load"/>). Null, the default for
    /// the command line, reads paths as LLaMA-Factory does.
    /// </summary>
    public string? ConfineDatasetFilesTo { get; set; }

    /// <summary>
    /// The pair of these arguments LLaMA-Factory refuses, as the key and the problem (null when none): val_size with
    /// eval_dataset, mask_history with train_on_prompt. The one statement of both rules: the config parser reports it
    /// at the key's line, <see cref="Data.SupervisedProcessor.ForData"/> for arguments built in code.
    /// </summary>
    public (string Key, string Problem)? RefusedPair() =>
        ValSize > 0 && EvalDataset.Count > 0 ? ("val_size", "cannot be combined with eval_dataset")
        : MaskHistory && TrainOnPrompt ? ("mask_history", "cannot be combined with train_on_prompt")
        : null;
}
