using System.CommandLine;
using System.Globalization;
using SharpTune.Api;
using SharpTune.Chat;
using SharpTune.Inference;
using SharpTune.Swift;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune swift sft|infer|export|deploy|rlhf|eval --name value ...`: ms-swift's command line as a front end. The arguments are read
/// by the library's <see cref="SwiftArguments"/> and mapped by <see cref="SwiftRun"/> onto the same workflows the
/// LLaMA-Factory commands run (training, preference training, chat, export, the API server) and evalscope's local
/// general_qa/general_mcq evaluation; see docs/swift.md.
/// </summary>
public static class SwiftCommand
{
    public static Command Create()
    {
        var command = new Command("swift", "ms-swift's command line (swift sft|infer|export|deploy|rlhf|eval with ms-swift 3.x or 2.x argument names; see docs/swift.md)");
        command.Subcommands.Add(Sub("sft", "Fine-tune as `swift sft` does, into output_dir/vN-YYYYMMDD-HHMMSS/ with args.json, logging.jsonl and checkpoint-N/",
            Swift.SwiftCommand.Sft, a => Train(SwiftRun.PrepareSft(a, Environment.CurrentDirectory, DateTime.Now))));
        command.Subcommands.Add(Sub("rlhf", "Preference-train as `swift rlhf --rlhf_type dpo|orpo|simpo|kto|rm|ppo` does, on ms-swift's RLHF data, in swift sft's run layout",
            Swift.SwiftCommand.Rlhf, a => Train(SwiftRun.PrepareRlhf(a, Environment.CurrentDirectory, DateTime.Now))));
        command.Subcommands.Add(Sub("eval", "Evaluate as `swift eval` does with evalscope's local general_qa (BLEU/ROUGE) and general_mcq (accuracy) sets, into eval_output/",
            Swift.SwiftCommand.Eval, Eval));
        command.Subcommands.Add(Sub("infer", "Chat as `swift infer` does: one question per stdin line, the answer on stdout; --adapters CKPT reads the run's args.json",
            Swift.SwiftCommand.Infer, Infer));
        command.Subcommands.Add(Sub("deploy", "Serve the OpenAI API as `swift deploy` does: the base and each --adapters NAME=CKPT as model ids; --adapters reads the run's args.json",
            Swift.SwiftCommand.Deploy, Deploy));
        command.Subcommands.Add(Sub("export", "Merge a checkpoint's LoRA adapter as `swift export --adapters CKPT --merge_lora true` does, into CKPT-merged",
            Swift.SwiftCommand.Export, Export));
        return command;
    }

    private static Command Sub(string name, string description, Swift.SwiftCommand swiftCommand, Func<SwiftArguments, int> run)
    {
        var command = new Command(name, description) { TreatUnmatchedTokensAsErrors = false };
        // ms-swift's arguments are not System.CommandLine options: every token after the subcommand goes, in order, to SwiftArguments.
        command.SetAction(r => CliAction.Run(() =>
        {
            var tokens = r.Tokens.Select(t => t.Value).ToList();
            int start = tokens.IndexOf(name) + 1;
            var arguments = SwiftArguments.Parse(swiftCommand, tokens[start..]);
            return run(arguments);
        }));
        return command;
    }

    private static int Train(SwiftRun.Sft prepared)
    {
        foreach (string note in prepared.Notes) ConsoleRunObserver.Log($"note: {note}");
        ConsoleRunObserver.Log($"output_dir: {prepared.RunDir}");
        using var interrupt = CtrlCInterrupt.ForTraining();
        var observer = new RunObservers(new ConsoleRunObserver(), new SwiftRun.LayoutObserver(prepared.RunDir), interrupt);
        var result = TrainingWorkflow.Run(new TrainingRequest(prepared.Config), interrupt.Token, observer);
        if (result.Training is { Interrupted: true } stopped)
        {
            ConsoleRunObserver.Log($"stopped at step {stopped.GlobalStep}/{stopped.MaxSteps}; the last checkpoint is {stopped.CheckpointPath}");
            return CtrlCInterrupt.ExitCode;
        }
        ConsoleRunObserver.PrintMetrics(result.Metrics);
        return 0;
    }

    private static int Eval(SwiftArguments arguments)
    {
        var plan = SwiftEval.Prepare(arguments, Environment.CurrentDirectory, DateTime.Now);
        foreach (string note in plan.Notes) ConsoleRunObserver.Log($"note: {note}");
        var inference = plan.Inference;
        using var session = ChatSession.Open(inference.Model, inference.Template, inference.System, inference.Adapters, inference.Quantization);
        CliAction.ReportBackend(session.Model.Backend);
        // ms-swift's swift eval generates greedily unless --temperature is above 0.
        var options = SwiftRun.Generation(arguments, session.DefaultOptions() with { DoSample = false });
        using var interrupt = CtrlCInterrupt.Armed("stopping the current reply");
        return interrupt.Run(() =>
        {
            var scores = SwiftEval.Run(plan, session, options, interrupt.Token);
            var rows = scores.Select(s => new[] { plan.ModelName, s.Dataset, s.Metric, s.Subset, s.Num.ToString(CultureInfo.InvariantCulture),
                s.Score.ToString("F4", CultureInfo.InvariantCulture) }).ToList();
            PrintTable(["Model", "Dataset", "Metric", "Subset", "Num", "Score"], rows);
            ConsoleRunObserver.Log($"report: {Path.Combine(plan.OutputDir, "reports", plan.ModelName)}");
            return 0;
        }, "no report written");
    }

    /// <summary>evalscope's summary table: a grid of +---+ rules and | cells.</summary>
    private static void PrintTable(string[] header, List<string[]> rows)
    {
        int[] widths = header.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string rule = "+" + string.Join("+", widths.Select(w => new string('-', w + 2))) + "+";
        string Line(string[] cells) => "| " + string.Join(" | ", cells.Select((c, i) => c.PadRight(widths[i]))) + " |";
        Console.WriteLine(rule);
        Console.WriteLine(Line(header));
        Console.WriteLine(rule);
        foreach (var row in rows) Console.WriteLine(Line(row));
        Console.WriteLine(rule);
    }

    private static int Infer(SwiftArguments arguments)
    {
        var inference = SwiftRun.PrepareInference(arguments);
        foreach (string note in inference.Notes) ConsoleRunObserver.Log($"note: {note}");
        using var session = ChatSession.Open(inference.Model, inference.Template, inference.System, inference.Adapters, inference.Quantization);
        CliAction.ReportBackend(session.Model.Backend);
        var options = SwiftRun.Generation(arguments, session.DefaultOptions());
        ConsoleRunObserver.Log($"template: {session.Template.Name}. One question per line; clear resets the conversation, exit or quit ends.");
        while (true)
        {
            Console.Error.Write("<<< ");
            string? line = Console.ReadLine();
            if (line is null) break;
            string typed = line.Trim();
            if (typed.Equals("exit", StringComparison.OrdinalIgnoreCase) || typed.Equals("quit", StringComparison.OrdinalIgnoreCase)) break;
            if (typed.Equals("clear", StringComparison.OrdinalIgnoreCase))
            {
                session.Clear();
                continue;
            }
            if (typed.Length == 0) continue;
            session.Reply(line, options, piece => Console.Write(piece));
            Console.WriteLine();
        }
        return 0;
    }

    private static int Deploy(SwiftArguments arguments)
    {
        var deployment = SwiftRun.PrepareDeploy(arguments);
        foreach (string note in deployment.Notes) ConsoleRunObserver.Log($"note: {note}");
        var options = new ApiServerOptions { Host = deployment.Host, Port = deployment.Port, ApiKey = deployment.ApiKey };
        // Before the models load, as `sharptune api` checks them.
        options.Validate();
        ServerBinding.ResolveHost(options.Host);
        var inference = deployment.Inference;
        GenerationOptions Defaults(GenerationOptions o) => SwiftRun.Generation(arguments, o);
        var models = new List<ServedModel>();
        try
        {
            models.Add(ServedModel.Load(deployment.BaseName, inference.Model, [], inference.Template, inference.Quantization, null, inference.System, defaults: Defaults));
            foreach (var (name, dir) in deployment.Adapters)
                models.Add(ServedModel.Load(name, inference.Model, [dir], inference.Template, inference.Quantization, null, inference.System, defaults: Defaults));
            ApiCommand.Serve(options, models);
            return 0;
        }
        finally
        {
            foreach (var served in models) served.Dispose();
        }
    }

    private static int Export(SwiftArguments arguments)
    {
        var (config, notes) = SwiftRun.PrepareExport(arguments, Environment.CurrentDirectory);
        foreach (string note in notes) ConsoleRunObserver.Log($"note: {note}");
        using var interrupt = CtrlCInterrupt.Armed("stopping before the next tensor");
        foreach (string file in ExportWorkflow.Run(config, interrupt.Token, new RunObservers(new ConsoleRunObserver(), interrupt))) Console.WriteLine(file);
        return 0;
    }
}
