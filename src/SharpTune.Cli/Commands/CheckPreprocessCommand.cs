using System.CommandLine;

namespace SharpTune.Cli.Commands;

public static class CheckPreprocessCommand
{
    public static Command Create()
    {
        var command = new Command("preprocess", "(being built)");
        command.SetAction(_ => CliAction.Run(() => throw new NotImplementedException("preprocess")));
        return command;
    }
}
