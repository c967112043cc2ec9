using System.CommandLine;
using SharpTune.Cli.Commands;

namespace SharpTune.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("SharpTune: fine-tune, chat with and check Qwen-family language models, in .NET.")
        {
            ChatCommands.Chat(),
            ChatCommands.Generate(),
            InitModelCommand.Create(),
            CheckCommands.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
