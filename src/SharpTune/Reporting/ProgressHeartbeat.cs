using System.Diagnostics;
using System.Globalization;
using SharpTune.Training.Trainer;

namespace SharpTune.Reporting;

/// <summary>
/// Keeps a log that is not a terminal alive: whenever nothing was written for <c>interval</c>, writes the current
/// status line (from a timer thread). A piped or logged run then shows where it stands at least every interval,
/// even while one optimizer step, one evaluation or one generated batch takes minutes. Every line of the run goes
/// through <see cref="WriteLine"/>, so timer lines never interleave with the others.
/// </summary>
public sealed class ProgressHeartbeat : IDisposable
{
    /// <summary>Seconds between lines when nothing else was written (default 30).</summary>
    public const string IntervalVariable = "SHARPTUNE_PROGRESS_SECONDS";

    private static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);

    private readonly object _lock = new();
    private readonly TextWriter _writer;
    private readonly TimeSpan _interval;
    private readonly Func<string> _status;
    private readonly Stopwatch _sinceStart = Stopwatch.StartNew();
    private readonly Stopwatch _sinceWrite = Stopwatch.StartNew();
    private readonly Timer _timer;
    private bool _stopped;

    /// <param name="status">Where the run stands (e.g. "[step 3/100 3.0%]"); the line adds "working" and the time since the heartbeat started.</param>
    public ProgressHeartbeat(TextWriter writer, TimeSpan interval, Func<string> status)
    {
        if (interval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval), interval, "the progress interval must be positive");
        _writer = writer;
        _interval = interval;
        _status = status;
        // Checking ten times per interval keeps the longest silence within 1.1 intervals.
        var period = TimeSpan.FromTicks(Math.Max(interval.Ticks / 10, TimeSpan.FromMilliseconds(10).Ticks));
        _timer = new Timer(_ => Beat(), null, period, period);
    }

    /// <summary>
    /// The interval from <see cref="IntervalVariable"/> (a positive number of seconds), else 30 seconds.
    /// </summary>
    /// <exception cref="ArgumentException">The variable is set to something else.</exception>
    public static TimeSpan ConfiguredInterval()
    {
        string? text = Environment.GetEnvironmentVariable(IntervalVariable);
        if (string.IsNullOrWhiteSpace(text)) return DefaultInterval;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0 && seconds <= TimeSpan.MaxValue.TotalSeconds / 2
            ? TimeSpan.FromSeconds(seconds)
            : throw new ArgumentException($"{IntervalVariable} must be a positive number of seconds, got '{text}'");
    }

    public void WriteLine(string text)
    {
        lock (_lock)
        {
            _writer.WriteLine(text);
            _writer.Flush();
            _sinceWrite.Restart();
        }
    }

    private void Beat()
    {
        lock (_lock)
        {
            if (_stopped || _sinceWrite.Elapsed < _interval) return;
            _writer.WriteLine($"{_status()} working | elapsed {PythonText.Timedelta(_sinceStart.Elapsed.TotalSeconds)}");
            _writer.Flush();
            _sinceWrite.Restart();
        }
    }

    /// <summary>Stops the timer; no status line is written after this returns.</summary>
    public void Dispose()
    {
        lock (_lock) _stopped = true;
        _timer.Dispose();
    }
}
