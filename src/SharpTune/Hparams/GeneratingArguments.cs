namespace SharpTune.Hparams;

/// <summary>
/// LLaMA-Factory's generating arguments (defaults as in its hparams/generating_args.py), used by prediction runs
/// (<c>do_predict</c> with <c>predict_with_generate</c>) and as the API server's defaults. Note that LLaMA-Factory
/// samples by default.
/// </summary>
public sealed class GeneratingArguments
{
    public bool DoSample { get; set; } = true;
    public double Temperature { get; set; } = 0.95;
    public double TopP { get; set; } = 0.7;
    /// <summary>top_k: 0 disables top-k filtering.</summary>
    public int TopK { get; set; } = 50;
    public int MaxNewTokens { get; set; } = 1024;
    public double RepetitionPenalty { get; set; } = 1.0;
    /// <summary>skip_special_tokens: whether the predictions and labels in generated_predictions.jsonl drop special tokens.</summary>
    public bool SkipSpecialTokens { get; set; } = true;
}
