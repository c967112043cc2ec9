using System.CommandLine;
using SharpTune.Hparams;
using SharpTune.FineTuning.Memory;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune estimate CONFIG.yaml [key=value ...]`: the memory pre-flight `train` runs, printed as a table (one row
/// per component, the total, the memory available, the verdict and, when it does not fit, the options that would),
/// from config.json and the safetensors headers alone: no weight is loaded. Exit status 0 when the run fits (or the
/// available memory cannot be read), 3 when it does not.
/// </summary>
public static class EstimateCommand
{
    public const int DoesNotFitExitCode = 3;

    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "the LLaMA-Factory style YAML config train would run (see docs/config.md)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("estimate", "Estimate a training run's peak memory from its config, without loading the model, and say whether it fits here") { config, overrides };
        command.SetAction(r => CliAction.Run(() =>
        {
            var cfg = SftConfig.Load(r.GetValue(config)!, r.GetValue(overrides) ?? [], ConfigUse.Train);
            foreach (string note in cfg.Notes) Console.Error.WriteLine($"[sharptune] note: {note}");
            var check = MemoryCheck.Run(cfg, SystemMemory.Read());
            Console.Write(check.Format());
            return check.Fits ? 0 : DoesNotFitExitCode;
        }));
        return command;
    }
}
