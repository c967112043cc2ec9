namespace SharpTune.Hparams;

/// <summary>
/// One parsed LLaMA-Factory YAML config: the argument groups LLaMA-Factory splits it into, plus notes about
/// accepted-but-ignored keys for the user.
/// </summary>
public sealed class SftConfig
{
    public ModelArguments Model { get; } = new();
    public DataArguments Data { get; } = new();
    public FinetuningArguments Finetuning { get; } = new();
    public TrainingArguments Training { get; } = new();
    public ExportArguments Export { get; } = new();

    /// <summary>Messages about keys that were accepted without effect (e.g. report_to), for the start-up log.</summary>
    public List<string> Notes { get; } = [];

}
