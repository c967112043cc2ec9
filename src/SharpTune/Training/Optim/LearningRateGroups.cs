using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>
/// The parameter groups of torch's optimizers as far as the learning rate goes: parameters with the same
/// <see cref="Parameter.LearningRateScale"/> form one group, whose step runs at the schedule's learning rate times that
/// scale (weight decay, per parameter, is <see cref="Parameter.WeightDecay"/>). Fixed when the optimizer is made; a
/// step forms one <see cref="AdamWStep"/> per group, so one group costs what no grouping did.
/// </summary>
internal sealed class LearningRateGroups
{
    private readonly double[] _scales;
    private readonly int[] _groupOf;

    public LearningRateGroups(IReadOnlyList<Parameter> parameters)
    {
        var scales = new List<double>();
        _groupOf = new int[parameters.Count];
        for (int i = 0; i < parameters.Count; i++)
        {
            double scale = parameters[i].LearningRateScale;
            if (!(scale >= 0) || double.IsInfinity(scale))
                throw new ArgumentException($"parameter '{parameters[i].Name}': learning-rate scale {scale} must be finite and not negative");
            int group = scales.IndexOf(scale);
            if (group < 0)
            {
                group = scales.Count;
                scales.Add(scale);
            }
            _groupOf[i] = group;
        }
        _scales = scales.ToArray();
    }

    /// <summary>Each group's step at schedule learning rate <paramref name="lr"/>, indexed by <see cref="GroupOf"/>.</summary>
    public AdamWStep[] Steps(AdamWHyperparameters hyperparameters, double lr, long step) =>
        _scales.Select(scale => new AdamWStep(hyperparameters, scale == 1 ? lr : lr * scale, step)).ToArray();

    public int GroupOf(int parameter) => _groupOf[parameter];
}
