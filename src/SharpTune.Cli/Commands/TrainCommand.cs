using System.CommandLine;

namespace SharpTune.Cli.Commands;

public static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", "(being built)");
        command.SetAction(_ => CliAction.Run(() => throw new NotImplementedException("train")));
        return command;
    }
}
