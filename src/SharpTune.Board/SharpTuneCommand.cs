namespace SharpTune.Board;

/// <summary>
/// The command line that runs `sharptune`: the board is itself the sharptune CLI, so a run starts the same
/// executable. Started as an app host that is the program; started as <c>dotnet SharpTune.Cli.dll</c> it is the
/// dotnet host with the dll as first argument.
/// </summary>
public sealed record SharpTuneCommand(string Program, IReadOnlyList<string> LeadingArguments)
{
    /// <summary>This process's own executable, as an app host or through the dotnet host.</summary>
    public static SharpTuneCommand Current()
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process's executable is unknown");
        string name = Path.GetFileNameWithoutExtension(process);
        if (!string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase)) return new SharpTuneCommand(process, []);
        string dll = System.Reflection.Assembly.GetEntryAssembly()?.Location is { Length: > 0 } location
            ? location
            : throw new InvalidOperationException("started by the dotnet host, but the entry assembly's file is unknown");
        return new SharpTuneCommand(process, [dll]);
    }
}
