using System.CommandLine;

namespace SharpTune.Cli.Commands;

public static class CheckGradCommand
{
    public static Command Create()
    {
        var command = new Command("grad", "(being built)");
        command.SetAction(_ => CliAction.Run(() => throw new NotImplementedException("grad")));
        return command;
    }
}
