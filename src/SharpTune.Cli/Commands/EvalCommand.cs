using System.CommandLine;
using SharpTune.Chat;
using SharpTune.Evaluation.Benchmarks;
using SharpTune.Hparams;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune eval CONFIG.yaml [key=value ...]`, as `llamafactory-cli eval`: a multiple-choice benchmark (task,
/// task_dir, n_shot, lang, batch_size, seed, save_dir) on model_name_or_path with its adapters; the accuracy of each
/// subject goes to stderr as it is done, LLaMA-Factory's category scores to stdout, results.json and results.log to
/// save_dir.
/// </summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "LLaMA-Factory style YAML (model_name_or_path, adapter_name_or_path, template, task, task_dir, n_shot, lang, batch_size, save_dir)" };
        var overrides = new Argument<string[]>("overrides") { Description = "key=value pairs that replace the file's values", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("eval", "Score a model on a multiple-choice benchmark (MMLU, CMMLU, C-Eval) in LLaMA-Factory's evaluation-set format") { config, overrides };
        command.SetAction(r => CliAction.Run(() => Eval(SftConfig.Load(r.GetValue(config)!, r.GetValue(overrides) ?? [], ConfigUse.Eval))));
        return command;
    }

    private static int Eval(SftConfig cfg)
    {
        foreach (string note in cfg.Notes) Console.Error.WriteLine($"[sharptune] note: {note}");
        var e = cfg.Evaluation;
        var task = BenchmarkTask.Open(e.TaskDir, e.Task!);
        using var session = ChatSession.Open(cfg.Model.ModelNameOrPath, cfg.Data.Template ?? "auto", null, cfg.Model.AdapterNameOrPath, cfg.Model.Quantization);
        var template = cfg.Data.DefaultSystem is { } system ? session.Template.WithDefaultSystem(system) : session.Template;
        Console.Error.WriteLine($"[sharptune] {task.Benchmark} {task.Split}: {task.Subjects.Count} subjects, {e.NShot}-shot, lang {e.Lang}, template {template.Name}");
        var result = BenchmarkRun.Run(session.Model, session.Tokenizer, template, task,
            new BenchmarkSettings(e.NShot, e.Lang, e.BatchSize, cfg.Training.Seed), line => Console.Error.WriteLine($"[sharptune] {line}"));
        foreach (var (subject, questions, accuracy) in result.SubjectAccuracies)
            Console.Error.WriteLine($"[sharptune] {subject.Name,-40} {accuracy,6:F2}  ({questions} questions, {subject.Category})");
        Console.WriteLine(result.ScoreInfo());
        if (e.SaveDir is { } saveDir)
        {
            result.Save(saveDir);
            Console.Error.WriteLine($"[sharptune] saved results.json and results.log to {saveDir}");
        }
        return 0;
    }
}
