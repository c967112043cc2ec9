namespace SharpTune.Data;

/// <summary>
/// One example of a prediction run, as LLaMA-Factory's unsupervised processor emits it: the prompt the model
/// continues and the reference answer it is compared with (both already cut to cutoff_len).
/// </summary>
public sealed record GenerationExample(int[] PromptIds, int[] LabelIds)
{
    /// <summary>The text of the last prompt message (the question the answer replies to), for reports that show it.</summary>
    public string Question { get; init; } = "";
}
