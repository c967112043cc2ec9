using SharpTune.IO;

namespace SharpTune.Evaluation.Benchmarks;

/// <summary>
/// The predicted letters of every subject and whether each was right, summarised as LLaMA-Factory's evaluator
/// prints and saves them: accuracy (in %) on everything and per category, and per subject.
/// </summary>
public sealed class BenchmarkResult
{
    /// <summary>LLaMA-Factory's SUBJECTS: the average over all questions, then the four categories.</summary>
    public static readonly IReadOnlyList<string> Categories = ["Average", "STEM", "Social Sciences", "Humanities", "Other"];

    private readonly List<(BenchmarkSubject Subject, IReadOnlyList<string> Predictions, IReadOnlyList<bool> Correct)> subjects = [];

    public void Add(BenchmarkSubject subject, IReadOnlyList<string> predictions, IReadOnlyList<bool> correct) =>
        subjects.Add((subject, predictions, correct));

    /// <summary>Accuracy in % of each subject, in evaluation order.</summary>
    public IEnumerable<(BenchmarkSubject Subject, int Questions, double Accuracy)> SubjectAccuracies =>
        subjects.Select(s => (s.Subject, s.Correct.Count, Percent(s.Correct)));

    /// <summary>Accuracy in % of each category with questions, "Average" first.</summary>
    public IEnumerable<(string Category, double Accuracy)> CategoryAccuracies =>
        Categories.Select(c => (c, Correct: subjects.Where(s => c == "Average" || s.Subject.Category == c).SelectMany(s => s.Correct).ToList()))
            .Where(c => c.Correct.Count > 0)
            .Select(c => (c.c, Percent(c.Correct)));

    /// <summary>LLaMA-Factory's score lines: each category right-aligned in 15 characters, ": ", the accuracy with two decimals.</summary>
    public string ScoreInfo() => string.Join("\n", CategoryAccuracies.Select(c => $"{c.Category,15}: {c.Accuracy.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)}"));

    /// <summary>
    /// save_dir as LLaMA-Factory writes it: results.json (each subject's predicted letters by question index, as
    /// Python's json.dump with indent 2) and results.log (the score lines). The folder must not exist yet.
    /// </summary>
    public void Save(string saveDir)
    {
        if (Directory.Exists(saveDir) || File.Exists(saveDir))
            throw new IOException($"save_dir: '{saveDir}' already exists, use another one");
        var results = subjects.Select(s => new KeyValuePair<string, object?>(s.Subject.Name,
            s.Predictions.Select((p, i) => new KeyValuePair<string, object?>(i.ToString(System.Globalization.CultureInfo.InvariantCulture), p)).ToList())).ToList();
        string building = saveDir + ".partial";
        if (Directory.Exists(building)) Directory.Delete(building, recursive: true);
        Directory.CreateDirectory(building);
        AtomicFile.WriteText(Path.Combine(building, "results.json"), PythonJson.Dumps(results, indent: 2));
        AtomicFile.WriteText(Path.Combine(building, "results.log"), ScoreInfo());
        Directory.Move(building, saveDir);
    }

    private static double Percent(IReadOnlyList<bool> correct) => 100.0 * correct.Count(c => c) / correct.Count;
}
