using System.CommandLine;
using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune export CONFIG.yaml [key=value ...]`: LLaMA-Factory's merge/export step (<see cref="ExportWorkflow"/>);
/// prints the files written. Ctrl+C stops it before the next tensor, leaving export_dir as it was (exit code 130).
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
            using var interrupt = CtrlCInterrupt.Armed("stopping before the next tensor");
            return interrupt.Run(() =>
            {
                foreach (string file in ExportWorkflow.Run(cfg, interrupt.Token, new RunObservers(new ConsoleRunObserver(), interrupt))) Console.WriteLine(file);
                return 0;
            }, "export_dir is as it was");
        }));
        return command;
    }
}
