using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>The weights of one decoder layer as trainable tensors and linears.</summary>
public sealed class TrainableLayer
{
    public required int Index { get; init; }
    public required ModelTensor InputNorm { get; init; }
    public required TrainableLinear QProj { get; init; }
    public required TrainableLinear KProj { get; init; }
    public required TrainableLinear VProj { get; init; }
    public required TrainableLinear OProj { get; init; }
    public ModelTensor? QNorm { get; init; }
    public ModelTensor? KNorm { get; init; }
    public required ModelTensor PostAttentionNorm { get; init; }
    public required TrainableLinear GateProj { get; init; }
    public required TrainableLinear UpProj { get; init; }
    public required TrainableLinear DownProj { get; init; }

    public IEnumerable<TrainableLinear> Linears => [QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj];

    public TrainableLinear Projection(ProjectionSlot slot) => slot switch
    {
        ProjectionSlot.Query => QProj,
        ProjectionSlot.Key => KProj,
        ProjectionSlot.Value => VProj,
        ProjectionSlot.Output => OProj,
        ProjectionSlot.Gate => GateProj,
        ProjectionSlot.Up => UpProj,
        ProjectionSlot.Down => DownProj,
        _ => throw new ArgumentOutOfRangeException(nameof(slot)),
    };

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
        InputNorm.IsTrainable || QProj.HasTrainable || KProj.HasTrainable || VProj.HasTrainable || OProj.HasTrainable
        || QNorm?.IsTrainable == true || KNorm?.IsTrainable == true;

    /// <summary>Anything trained in the MLP half: post-attention norm, gate/up/down.</summary>
    public bool MlpTrainable => PostAttentionNorm.IsTrainable || GateProj.HasTrainable || UpProj.HasTrainable || DownProj.HasTrainable;

    /// <summary>The layer's tensors in transformers' named_parameters() order.</summary>
    public IEnumerable<ModelTensor> Tensors
    {
        get
        {
            foreach (var linear in new[] { QProj, KProj, VProj, OProj })
            {
                yield return linear.Weight;
                if (linear.Bias is not null) yield return linear.Bias;
            }
            if (QNorm is not null) yield return QNorm;
            if (KNorm is not null) yield return KNorm;
            foreach (var linear in new[] { GateProj, UpProj, DownProj })
            {
                yield return linear.Weight;
                if (linear.Bias is not null) yield return linear.Bias;
            }
            yield return InputNorm;
            yield return PostAttentionNorm;
        }
    }
}
