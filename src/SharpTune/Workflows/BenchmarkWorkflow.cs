using SharpTune.Chat;
using SharpTune.Evaluation.Benchmarks;
using SharpTune.Hparams;
using SharpTune.Training;

namespace SharpTune.Workflows;

/// <summary>
/// `llamafactory-cli eval` as a library call: a multiple-choice benchmark (task, task_dir, n_shot, lang, batch_size,
/// seed, save_dir) on model_name_or_path with its adapters; each subject's accuracy is a note as it is done, and
/// results.json and results.log go to save_dir when it is set. Cancellation is honoured between batches, before
/// anything is saved.
/// </summary>
public static class BenchmarkWorkflow
{
    public static BenchmarkResult Run(SftConfig cfg, CancellationToken cancellation, IRunObserver observer) =>
        Workflow.Observed("benchmark", observer, () =>
        {
            void Note(string text) => observer.On(new RunNote(text));
            foreach (string note in cfg.Notes) Note($"note: {note}");
            var e = cfg.Evaluation;
            var task = BenchmarkTask.Open(e.TaskDir, e.Task!);
            using var session = ChatSession.Open(cfg.Model.ModelNameOrPath, cfg.Data.Template ?? "auto", null, cfg.Model.AdapterNameOrPath, cfg.Model.Quantization);
            var template = cfg.Data.DefaultSystem is { } system ? session.Template.WithDefaultSystem(system) : session.Template;
            Note($"{task.Benchmark} {task.Split}: {task.Subjects.Count} subjects, {e.NShot}-shot, lang {e.Lang}, template {template.Name}");
            observer.On(new RunStarted(new RunPlan("benchmark", null, task.Subjects.Count, BatchSize: e.BatchSize)));
            cancellation.ThrowIfCancellationRequested();
            var result = BenchmarkRun.Run(session.Model, session.Tokenizer, template, task,
                new BenchmarkSettings(e.NShot, e.Lang, e.BatchSize, cfg.Training.Seed), Note, cancellation);
            foreach (var (subject, questions, accuracy) in result.SubjectAccuracies)
                Note($"{subject.Name,-40} {accuracy,6:F2}  ({questions} questions, {subject.Category})");
            if (e.SaveDir is { } saveDir)
            {
                result.Save(saveDir);
                Note($"saved results.json and results.log to {saveDir}");
            }
            observer.On(new RunFinished("benchmark", result.SubjectAccuracies
                .Select(s => new KeyValuePair<string, object?>(s.Subject.Name, s.Accuracy)).ToList()));
            return result;
        });
}
