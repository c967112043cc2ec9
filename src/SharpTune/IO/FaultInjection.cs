using System.Diagnostics;
using System.Globalization;

namespace SharpTune.IO;

/// <summary>
/// Crash testing: with <c>SHARPTUNE_FAULT=POINT[:N]</c> set, the Nth time (1 when N is left out) the process reaches
/// <c>Point("POINT")</c> it kills itself with SIGKILL, so no finally block, flush or dispose runs, exactly as after a
/// <c>kill -9</c> or a power cut. The points sit between the steps of every save, rename, rotation, export and log
/// append (<c>docs/architecture.md</c> lists them); the crash-safety tests kill the real CLI at each and check that
/// every file is complete or absent and that the same command resumes. Unset, a point is one null check.
/// </summary>
public static class FaultInjection
{
    public const string Variable = "SHARPTUNE_FAULT";

    private static readonly string? s_point;
    private static readonly int s_hit;
    private static int s_reached;

    static FaultInjection()
    {
        string? value = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(value)) return;
        string[] parts = value.Split(':');
        s_hit = 1;
        if (parts.Length > 2 || parts[0].Length == 0
            || (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out s_hit) || s_hit < 1)))
            throw new ArgumentException($"{Variable}={value}: expected POINT or POINT:N with N a positive count");
        s_point = parts[0];
    }

    /// <summary>A named point; kills the process here when <see cref="Variable"/> names it and this is its Nth time.</summary>
    public static void Point(string name)
    {
        if (s_point is null || !string.Equals(name, s_point, StringComparison.Ordinal)) return;
        if (Interlocked.Increment(ref s_reached) != s_hit) return;
        Console.Error.WriteLine($"[sharptune] {Variable}: killed at {name}:{s_hit}");
        Process.GetCurrentProcess().Kill();
    }
}
