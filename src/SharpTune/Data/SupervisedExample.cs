namespace SharpTune.Data;

/// <summary>
/// One tokenised training example as LLaMA-Factory's supervised processor emits it, before padding:
/// labels are -100 where a token carries no loss.
/// </summary>
public sealed record SupervisedExample(int[] InputIds, int[] AttentionMask, int[] Labels)
{
    public int Length => InputIds.Length;

    /// <summary>Each token's position, where it is not its index (a packed block restarts it at each example); else null.</summary>
    public int[]? PositionIds { get; init; }
}
