using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>
/// AdamW exactly as torch.optim.AdamW (single-tensor path, <see cref="AdamWStep"/>) with fp32 moments: optim
/// <c>adamw_torch</c>, and <c>paged_adamw_32bit</c> when the moments are paged (<see cref="PagedStateStorage"/>;
/// bitsandbytes' 32-bit AdamW kernel computes the same update, its rounding aside).
/// </summary>
public sealed class AdamW : IOptimizer
{
    /// <summary>Checkpoint names of the moments: the prefix plus the parameter's name.</summary>
    public const string ExpAvgPrefix = "exp_avg.";
    public const string ExpAvgSqPrefix = "exp_avg_sq.";

    private readonly NamedState _state;
    private readonly LearningRateGroups _groups;

    public string Name { get; }
    public string StateFormat => "adamw";
    public IReadOnlyList<Parameter> Parameters { get; }
    public AdamWHyperparameters Hyperparameters { get; }
    public long Step { get; private set; }
    public long StateBytes => _state.Storage.Bytes;

    /// <summary>The temporary file of paged state (null when not paged); it is deleted by <see cref="Dispose"/>.</summary>
    internal string? StateFilePath => _state.FilePath;
    public IReadOnlyList<OptimizerStateTensor> StateTensors => _state.Tensors;

    /// <summary>Whether the moments live in a paged, file-backed mapping (<see cref="PagedStateStorage"/>).</summary>
    public bool Paged { get; }

    public AdamW(IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.0)
        : this(parameters, new AdamWHyperparameters(beta1, beta2, epsilon, weightDecay), paged: false)
    {
    }

    public AdamW(IReadOnlyList<Parameter> parameters, AdamWHyperparameters hyperparameters, bool paged)
    {
        Parameters = parameters;
        Hyperparameters = hyperparameters;
        Paged = paged;
        _groups = new LearningRateGroups(parameters);
        Name = paged ? OptimizerNames.PagedAdamW32Bit : OptimizerNames.AdamWTorch;
        // Slot 2i is parameter i's first moment, slot 2i + 1 its second.
        _state = new NamedState(parameters.SelectMany(p => new[]
        {
            (ExpAvgPrefix + p.Name, Shape(p), MomentSlot(p.Length)),
            (ExpAvgSqPrefix + p.Name, Shape(p), MomentSlot(p.Length)),
        }).ToList(), paged);
    }

    private static StateSlot MomentSlot(int length) => new(DType.F32, length);

    /// <summary>Bytes of state for parameters of these lengths: two fp32 moments, 8 bytes per value.</summary>
    public static long StateBytesFor(IEnumerable<int> parameterLengths) => parameterLengths.Sum(length => 2 * MomentSlot(length).ByteSize);

    /// <summary>Parameter <paramref name="index"/>'s first moment (exp_avg), in place.</summary>
    public Span<float> ExpAvg(int index) => _state.Storage.Floats(2 * index);

    /// <summary>Parameter <paramref name="index"/>'s second moment (exp_avg_sq), in place.</summary>
    public Span<float> ExpAvgSq(int index) => _state.Storage.Floats(2 * index + 1);

    public void Update(double lr)
    {
        Step++;
        var steps = _groups.Steps(Hyperparameters, lr, Step);
        // The engine's pool, as every other parallel loop of a step: a second pool would spin on the same cores.
        GemmThreadPool.Shared.For(Parameters.Count, i =>
        {
            var p = Parameters[i];
            var step = steps[_groups.GroupOf(i)];
            step.Apply(p.Data, p.Grad, ExpAvg(i), ExpAvgSq(i), step.DecayFor(p));
        });
    }

    public void Restore(long step, OptimizerStateReader read)
    {
        _state.Restore(read);
        Step = step;
    }

    public void Dispose() => _state.Dispose();

    internal static long[] Shape(Parameter p) => p.Shape.Select(d => (long)d).ToArray();
}
