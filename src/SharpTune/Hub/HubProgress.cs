using System.Diagnostics;
using System.Globalization;

namespace SharpTune.Hub;

/// <summary>
/// One progress bar for a download of several files in parallel: bytes done of the total, rate and time left, on
/// <paramref name="output"/> (stderr). On a terminal the line is redrawn in place twice a second; piped, a line is
/// written every few seconds so logs stay short.
/// </summary>
public sealed class HubProgress(TextWriter output, string label, long totalBytes, bool interactive) : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private long _done;
    private double _lastDrawnSeconds = double.NegativeInfinity;

    /// <summary>Adds (or, for a download that restarts, removes) bytes and redraws when it is time.</summary>
    public void Add(long bytes)
    {
        long done = Interlocked.Add(ref _done, bytes);
        double now = _clock.Elapsed.TotalSeconds;
        lock (_gate)
        {
            if (now - _lastDrawnSeconds < (interactive ? 0.5 : 5)) return;
            _lastDrawnSeconds = now;
            Draw(done, final: false);
        }
    }

    public void Dispose()
    {
        lock (_gate) Draw(Interlocked.Read(ref _done), final: true);
    }

    private void Draw(long done, bool final)
    {
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        double rate = done / seconds;
        string eta = final ? $"in {FormatTime(seconds)}" : rate > 0 ? $"ETA {FormatTime((totalBytes - done) / rate)}" : "ETA --:--";
        int percent = totalBytes > 0 ? (int)Math.Clamp(done * 100 / totalBytes, 0, 100) : 100;
        int filled = percent / 5;
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{label} [{new string('#', filled)}{new string('.', 20 - filled)}] {percent,3}% {FormatBytes(done)}/{FormatBytes(totalBytes)} {FormatBytes((long)rate)}/s {eta}");
        if (interactive) output.Write($"\r{line}{(final ? "\n" : "")}");
        else output.WriteLine(line);
        output.Flush();
    }

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1000 && unit < units.Length - 1) { value /= 1000; unit++; }
        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    private static string FormatTime(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Round(Math.Max(seconds, 0)));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : $"{t:mm\\:ss}";
    }
}
