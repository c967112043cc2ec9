using System.CommandLine;

namespace SharpTune.Cli.Commands;

public static class CheckMergeCommand
{
    public static Command Create()
    {
        var command = new Command("merge", "(being built)");
        command.SetAction(_ => CliAction.Run(() => throw new NotImplementedException("merge")));
        return command;
    }
}
