using SharpTune.Cli;

namespace SharpTune.Tests.Cli;

/// <summary>Console redirection is process-wide, so every test that runs the CLI shares one serial collection.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CliCollection
{
    public const string Name = "cli";
}

public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the real `sharptune` entry point in-process with the given stdin, capturing stdout and stderr.</summary>
public static class CliRunner
{
    public static CliResult RunWithInput(string stdin, params string[] args)
    {
        var (oldIn, oldOut, oldError) = (Console.In, Console.Out, Console.Error);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        try
        {
            Console.SetIn(new StringReader(stdin));
            Console.SetOut(stdout);
            Console.SetError(stderr);
            int code = Program.Run(args);
            return new CliResult(code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetIn(oldIn);
            Console.SetOut(oldOut);
            Console.SetError(oldError);
        }
    }

    public static CliResult Run(params string[] args) => RunWithInput("", args);
}
