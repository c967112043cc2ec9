using System.CommandLine;

namespace SharpTune.Cli.Commands;

public static class ExportCommand
{
    public static Command Create()
    {
        var command = new Command("export", "(being built)");
        command.SetAction(_ => CliAction.Run(() => throw new NotImplementedException("export")));
        return command;
    }
}
