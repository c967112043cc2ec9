using System.Diagnostics;

namespace SharpTune.Training.Model;

/// <summary>The parts of a training step that <see cref="StepProfile"/> times separately.</summary>
public enum StepSection
{
    Embedding,
    ProjectionsForward,
    ProjectionsBackward,
    LoraForward,
    LoraBackward,
    AttentionForward,
    AttentionBackward,
    NormsForward,
    NormsBackward,
    ElementwiseForward,
    ElementwiseBackward,
    LmHeadAndLoss,
    Optimizer,
}

/// <summary>
/// Wall-clock time per <see cref="StepSection"/>, summed over the steps run while it is <see cref="Active"/>: where a
/// step's time goes (the bench's --profile). Sections are timed on the thread that drives the step, around calls
/// that each use every engine thread, so the sections add up to the step. With no active profile a measurement
/// costs one null check.
/// </summary>
public sealed class StepProfile
{
    private readonly long[] _ticks = new long[Enum.GetValues<StepSection>().Length];

    /// <summary>The profile the training code reports to, or null (the default) to time nothing.</summary>
    public static StepProfile? Active { get; set; }

    /// <summary>Starts timing a section on the active profile; dispose the scope to stop.</summary>
    public static Scope Measure(StepSection section) => new(Active, section);

    /// <summary>Seconds spent in each section so far.</summary>
    public IReadOnlyDictionary<StepSection, double> Seconds =>
        Enum.GetValues<StepSection>().ToDictionary(s => s, s => _ticks[(int)s] / (double)Stopwatch.Frequency);

    public void Reset() => Array.Clear(_ticks);

    public readonly struct Scope : IDisposable
    {
        private readonly StepProfile? _profile;
        private readonly StepSection _section;
        private readonly long _start;

        internal Scope(StepProfile? profile, StepSection section)
        {
            _profile = profile;
            _section = section;
            _start = profile is null ? 0 : Stopwatch.GetTimestamp();
        }

        public void Dispose()
        {
            if (_profile is not null) Interlocked.Add(ref _profile._ticks[(int)_section], Stopwatch.GetTimestamp() - _start);
        }
    }
}
