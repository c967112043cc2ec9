using SharpTune.Engine;

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
            Console.Error.WriteLine($"error: {OneLine(e)}");
            return 1;
        }
    }

    private static string OneLine(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
        // A static constructor's failure (a malformed SHARPTUNE_FAULT) says only which type failed; its cause says why.
        while (e is TypeInitializationException { InnerException: { } cause }) e = cause;
        return e.Message.ReplaceLineEndings(" ");
    }

    /// <summary>Reports the compute backend once, on stderr so it never mixes with a command's output.</summary>
    public static void ReportBackend(IComputeBackend backend) => Console.Error.WriteLine($"[sharptune] backend: {backend.Describe()}");
}
