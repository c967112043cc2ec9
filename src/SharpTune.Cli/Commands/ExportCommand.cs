using System.CommandLine;
using SharpTune.Hparams;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune export CONFIG.yaml [key=value ...]`: LLaMA-Factory's merge/export step (<see cref="ExportWorkflow"/>);
/// prints the files written.
/// </summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML (model_name_or_path, adapter_name_or_path, template, finetuning_type, export_dir, export_size)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("export", "Merge adapters into the base model and export a Hugging Face model folder") { config, overrides };
        command.SetAction(r => CliAction.Run(() =>
        {
            var cfg = SftConfig.Load(r.GetValue(config)!, r.GetValue(overrides) ?? [], ConfigUse.Export);
            foreach (string file in ExportWorkflow.Run(cfg, CancellationToken.None, new ConsoleRunObserver())) Console.WriteLine(file);
            return 0;
        }));
        return command;
    }
}
