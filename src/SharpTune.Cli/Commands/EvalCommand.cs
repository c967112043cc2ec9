using System.CommandLine;
using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune eval CONFIG.yaml [key=value ...]`, as `llamafactory-cli eval`: runs <see cref="BenchmarkWorkflow"/>
/// (the accuracy of each subject goes to stderr as it is done, results.json and results.log to save_dir) and prints
/// LLaMA-Factory's category scores to stdout. Ctrl+C stops it before the next batch, saving nothing (exit code 130).
/// </summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML (model_name_or_path, adapter_name_or_path, template, task, task_dir, n_shot, lang, batch_size, save_dir)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("eval", "Score a model on a multiple-choice benchmark (MMLU, CMMLU, C-Eval) in LLaMA-Factory's evaluation-set format") { config, overrides };
        command.SetAction(r => CliAction.Run(() =>
        {
            var cfg = SftConfig.Load(r.GetValue(config)!, r.GetValue(overrides) ?? [], ConfigUse.Eval);
            using var interrupt = CtrlCInterrupt.Armed("stopping before the next batch");
            return interrupt.Run(() =>
            {
                var result = BenchmarkWorkflow.Run(cfg, interrupt.Token, new RunObservers(new ConsoleRunObserver(), interrupt));
                Console.WriteLine(result.ScoreInfo());
                return 0;
            }, "no results saved");
        }));
        return command;
    }
}
