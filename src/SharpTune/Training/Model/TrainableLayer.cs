using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// Where a projection is computed: by <see cref="Linear"/>, the <see cref="Index"/>-th Linear of its layer, in output
/// columns [Offset, Offset + Width): all of them for an ordinary projection, one part of a fused one (ChatGLM's
/// query_key_value, dense_h_to_4h).
/// </summary>
public sealed record LayerProjection(TrainableLinear Linear, int Index, int Offset, int Width)
{
    public bool IsFused => Width != Linear.OutFeatures;
}

/// <summary>The weights of one decoder layer as trainable tensors and linears.</summary>
public sealed class TrainableLayer
{
    public required int Index { get; init; }
    public required ModelTensor InputNorm { get; init; }
    public ModelTensor? QNorm { get; init; }
    public ModelTensor? KNorm { get; init; }
    public required ModelTensor PostAttentionNorm { get; init; }
    /// <summary>The layer's Linears in the architecture's declaration order.</summary>
    public required IReadOnlyList<TrainableLinear> Linears { get; init; }
    /// <summary>Every projection slot of the layer and the Linear part computing it.</summary>
    public required IReadOnlyDictionary<ProjectionSlot, LayerProjection> Projections { get; init; }
    /// <summary>The layer's Linears that read one input and multiply it as one stacked matrix (q/k/v, gate/up), if stored apart.</summary>
    public IReadOnlyList<SharedInputLinears> SharedInputs { get; init; } = [];
    /// <summary>The layer's tensors in transformers' named_parameters() order (the declaration order).</summary>
    public required IReadOnlyList<ModelTensor> Tensors { get; init; }

    /// <summary>The Linear computing <paramref name="slot"/> (a fused one computes several).</summary>
    public TrainableLinear Projection(ProjectionSlot slot) => Projections[slot].Linear;

    /// <summary>The group of <see cref="SharedInputs"/> computing <paramref name="slot"/>, or null.</summary>
    public SharedInputLinears? SharedInput(ProjectionSlot slot)
    {
        foreach (var group in SharedInputs)
            if (group.Slots.Contains(slot)) return group;
        return null;
    }

    /// <summary>The norm in a slot; null for a q/k norm the architecture does not have.</summary>
    public ModelTensor? Norm(NormSlot slot) => slot switch
    {
        NormSlot.Input => InputNorm,
        NormSlot.PostAttention => PostAttentionNorm,
        NormSlot.QueryNorm => QNorm,
        NormSlot.KeyNorm => KNorm,
        _ => throw new ArgumentOutOfRangeException(nameof(slot)),
    };

    /// <summary>Anything trained in the attention half: input norm, q/k/v/o (weights, biases, adapters), q/k norms.</summary>
    public bool AttentionTrainable =>
        InputNorm.IsTrainable || QNorm?.IsTrainable == true || KNorm?.IsTrainable == true
        || AnyTrainable(ProjectionSlot.Query, ProjectionSlot.Key, ProjectionSlot.Value, ProjectionSlot.Output);

    /// <summary>Anything trained in the MLP half: post-attention norm, gate/up/down.</summary>
    public bool MlpTrainable => PostAttentionNorm.IsTrainable || AnyTrainable(ProjectionSlot.Gate, ProjectionSlot.Up, ProjectionSlot.Down);

    private bool AnyTrainable(params ProjectionSlot[] slots) => slots.Any(s => Projection(s).HasTrainable);
}
