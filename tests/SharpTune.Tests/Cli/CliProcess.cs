using System.Diagnostics;
using System.Text;

namespace SharpTune.Tests.Cli;

/// <summary>
/// The built `sharptune` apphost run as a child process: for what cannot happen in-process, signals and a process
/// killing itself (SHARPTUNE_FAULT).
/// </summary>
public static class CliProcess
{
    /// <param name="environment">Variables to set; a null value removes one inherited from the test process.</param>
    public static ProcessStartInfo StartInfo(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli"))
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(key);
            else start.Environment[key] = value;
        }
        return start;
    }

    /// <summary>Runs to the end (2 minutes at most) with <c>SHARPTUNE_FAULT=<paramref name="fault"/></c>.</summary>
    public static CliResult RunWithFault(string fault, params string[] args) =>
        Run(args, new Dictionary<string, string?> { ["SHARPTUNE_FAULT"] = fault });

    /// <summary>Runs to the end (2 minutes at most) in a process of its own, with these environment variables.</summary>
    public static CliResult Run(string[] args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        using var process = Process.Start(StartInfo(args, environment))!;
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill();
            Assert.Fail($"sharptune {string.Join(' ', args)} did not exit within 2 minutes:\n{stderr}");
        }
        process.WaitForExit();
        lock (stderr) return new CliResult(process.ExitCode, stdout, stderr.ToString());
    }

    /// <summary>
    /// Runs until a stderr line starts with <paramref name="afterLineStarting"/>, then sends SIGINT (Ctrl+C) and waits
    /// for the exit (<paramref name="timeout"/> at most); returns the exit code and stderr.
    /// </summary>
    /// <param name="beforeInterrupt">Called with the awaited line before SIGINT is sent (e.g. to make requests to a server that now serves).</param>
    public static (int ExitCode, string Stderr) RunAndInterrupt(IEnumerable<string> args, string afterLineStarting, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null, Action<string>? beforeInterrupt = null)
    {
        using var process = Process.Start(StartInfo(args, environment))!;
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.StartsWith(afterLineStarting, StringComparison.Ordinal))
            {
                try
                {
                    beforeInterrupt?.Invoke(e.Data);
                }
                finally
                {
                    Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
                }
            }
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill();
            Assert.Fail($"sharptune {string.Join(' ', args)} did not exit within {timeout.TotalSeconds:0} s:\n{stderr}");
        }
        process.WaitForExit();
        lock (stderr) return (process.ExitCode, stderr.ToString());
    }
}
