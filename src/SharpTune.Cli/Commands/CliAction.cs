using SharpTune.Engine;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// Runs a command body and turns any failure into one clear line on stderr and a non-zero exit code:
/// users see what is wrong, not a stack trace (set SHARPTUNE_DEBUG=1 for one).
/// </summary>
public static class CliAction
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("SHARPTUNE_DEBUG") != "1")
        {
            Console.Error.WriteLine($"error: {Workflow.MessageOf(e)}");
            return 1;
        }
    }

    /// <summary>Reports the compute backend once, on stderr so it never mixes with a command's output.</summary>
    public static void ReportBackend(IComputeBackend backend) => Console.Error.WriteLine($"[sharptune] backend: {backend.Describe()}");
}
