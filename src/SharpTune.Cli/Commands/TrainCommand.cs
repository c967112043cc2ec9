using System.CommandLine;
using SharpTune.Distributed;
using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune train CONFIG.yaml [key=value ...]`: supervised fine-tuning (or, with stage pt, continued pretraining),
/// evaluation or prediction from a LLaMA-Factory YAML config. The command parses, runs <see cref="TrainingWorkflow"/>
/// with the console as its observer and Ctrl+C as its cancellation, and turns the result into an exit code (130 when
/// interrupted, with the command that resumes). Launched by <c>mpirun -np N</c> it is one rank of a data-parallel run
/// (docs/distributed.md): only rank 0 prints the run, and a rank that fails stops every rank with its message.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML config (see docs/config.md)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var lenient = new Option<bool>("--lenient")
        {
            Description = "Skip malformed dataset records and report them, instead of stopping at the first one (skip_invalid_records: true)",
        };
        var skipMemoryCheck = new Option<bool>("--skip-memory-check")
        {
            Description = "Train even when the memory estimate (sharptune estimate) says the run will not fit",
        };
        var command = new Command("train", "Fine-tune a model (lora, full or freeze), evaluate it or generate predictions, as a LLaMA-Factory config describes")
        {
            config, overrides, lenient, skipMemoryCheck,
        };
        command.SetAction(r => CliAction.Run(() => Train(r.GetValue(config)!, r.GetValue(overrides) ?? [], r.GetValue(lenient), r.GetValue(skipMemoryCheck))));
        return command;
    }

    /// <summary>Parses the config, runs <see cref="TrainingWorkflow"/> with Ctrl+C as its cancellation, prints the metrics.</summary>
    private static int Train(string configPath, string[] overrides, bool lenient, bool skipMemoryCheck)
    {
        using var world = ProcessGroup.JoinLaunchedJob();
        if (world is null) return TrainInThisProcess(configPath, overrides, lenient, skipMemoryCheck);
        try
        {
            return TrainInThisProcess(configPath, overrides, lenient, skipMemoryCheck);
        }
        catch (Exception e)
        {
            // The other ranks may wait in a collective for this one: MPI_Abort ends them all, with this message.
            world.Abort(Workflow.MessageOf(e), 1);
            throw;
        }
    }

    private static int TrainInThisProcess(string configPath, string[] overrides, bool lenient, bool skipMemoryCheck)
    {
        var cfg = SftConfig.Load(configPath, overrides, ConfigUse.Train);
        if (lenient) cfg.Data.SkipInvalidRecords = true;
        using var interrupt = CtrlCInterrupt.ForTraining();
        bool prints = ProcessGroup.WritesOutputs;
        var result = TrainingWorkflow.Run(new TrainingRequest(cfg, skipMemoryCheck), interrupt.Token,
            new RunObservers(prints ? new ConsoleRunObserver() : RunObservers.None, interrupt));
        if (!prints) return result.Training is { Interrupted: true } ? CtrlCInterrupt.ExitCode : 0;
        if (result.Training is { Interrupted: true } stopped)
        {
            ConsoleRunObserver.Log($"stopped at step {stopped.GlobalStep}/{stopped.MaxSteps}; resume with: {ResumeCommand(configPath, overrides, lenient, skipMemoryCheck, stopped.CheckpointPath!)}");
            return CtrlCInterrupt.ExitCode;
        }
        ConsoleRunObserver.PrintMetrics(result.Metrics);
        return 0;
    }

    /// <summary>
    /// The command line that continues an interrupted run: the same config, overrides, --lenient and --skip-memory-check
    /// (without them the resumed run would train on other data, into another output_dir, or be refused), with
    /// resume_from_checkpoint set last.
    /// </summary>
    private static string ResumeCommand(string configPath, IReadOnlyList<string> overrides, bool lenient, bool skipMemoryCheck, string checkpoint)
    {
        var args = new List<string> { "sharptune", "train", configPath };
        args.AddRange(overrides.Where(o => o.Split('=', 2)[0].Trim() != "resume_from_checkpoint"));
        args.Add($"resume_from_checkpoint={checkpoint}");
        if (lenient) args.Add("--lenient");
        if (skipMemoryCheck) args.Add("--skip-memory-check");
        return string.Join(" ", args.Select(ShellQuote));
    }

    /// <summary>A POSIX shell word: as is when it holds only safe characters, else single-quoted.</summary>
    private static string ShellQuote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "_-./=:,+@%".Contains(c))
            ? word
            : "'" + word.Replace("'", "'\\''") + "'";
}
