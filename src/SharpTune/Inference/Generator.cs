using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Inference;

public enum FinishReason
{
    /// <summary>A stop token was produced.</summary>
    Stop,
    /// <summary>max_new_tokens was reached.</summary>
    Length,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <param name="NewIds">The generated ids, without the stop token.</param>
/// <param name="StopTokenId">The stop token that ended generation, when FinishReason is Stop.</param>
public sealed record GenerationResult(int[] NewIds, FinishReason FinishReason, int? StopTokenId = null);

/// <summary>
/// Autoregressive decoding of one sequence: the batch-of-one case of <see cref="BatchGenerator"/> (the prompt is
/// prefilled in one pass, then each new token is one cached step), greedy or sampled with Hugging Face's logits
/// processors.
/// </summary>
public sealed class Generator(DecoderModel model)
{
    public DecoderModel Model { get; } = model;

    /// <param name="onToken">Called with each new id as soon as it is chosen (stop tokens are not reported).</param>
    /// <param name="constraint">Null, or the rule the generated tokens must follow (constrained decoding).</param>
    public GenerationResult Generate(IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? onToken = null, CancellationToken cancellation = default,
        ITokenConstraint? constraint = null) =>
        new BatchGenerator(Model).Generate([prompt], options, onToken is null ? null : (_, id) => onToken(id), cancellation,
            constraints: constraint is null ? null : [constraint])[0];
}
