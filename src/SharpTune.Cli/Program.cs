using System.CommandLine;
using System.CommandLine.Help;
using SharpTune.Cli.Commands;

namespace SharpTune.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Text crosses the process boundary as UTF-8 whatever the locale says (CI may have none).
        Console.InputEncoding = new System.Text.UTF8Encoding(false);
        Console.OutputEncoding = new System.Text.UTF8Encoding(false);
        return Run(args);
    }

    /// <summary>Parses and runs a command line against the current Console streams (tests redirect them).</summary>
    public static int Run(string[] args)
    {
        // A plain command named after the tool rather than RootCommand, whose name would be the assembly's.
        var root = new Command("sharptune", "SharpTune: fine-tune, chat with and check Qwen-family language models, in .NET.")
        {
            new HelpOption(),
            new VersionOption(),
            ChatCommands.Chat(),
            ChatCommands.Generate(),
            InitModelCommand.Create(),
            TrainCommand.Create(),
            EstimateCommand.Create(),
            DownloadCommand.Create(),
            ExportCommand.Create(),
            EvalCommand.Create(),
            CompareCommand.Create(),
            SwiftCommand.Create(),
            ApiCommand.Create(),
            WebuiCommand.Create(),
            CheckCommands.Create(),
            ScoreCommand.Create(),
            DataCommands.Create(),
            EnvCommands.Env(),
            EnvCommands.VersionCommand(),
        };
        return root.Parse(ConfigArguments.Normalize(args)).Invoke();
    }
}
