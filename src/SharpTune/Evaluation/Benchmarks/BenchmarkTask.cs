using System.IO.Compression;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Evaluation.Benchmarks;

/// <summary>A subject of a benchmark as its mapping.json lists it: the name shown in prompts and its category.</summary>
public sealed record BenchmarkSubject(string Name, string DisplayName, string Category);

/// <summary>One multiple-choice question: the options present among A–D in order, and the answer letter.</summary>
public sealed record BenchmarkQuestion(string Question, IReadOnlyList<(string Letter, string Text)> Choices, string Answer);

/// <summary>
/// A multiple-choice benchmark in LLaMA-Factory's evaluation-set format (<c>task_dir/NAME/</c>: <c>mapping.json</c>
/// with each subject's name and category, and the questions as CSV files, in <c>NAME.zip</c> as LLaMA-Factory ships
/// them or unpacked beside it). The task <c>NAME_SPLIT</c> (e.g. <c>mmlu_test</c>, <c>cmmlu_test</c>,
/// <c>ceval_validation</c>) names the benchmark and the split evaluated; the few-shot examples come from the
/// <c>train</c> split (the dev files). The CSV layouts are those of LLaMA-Factory's loading scripts:
/// <list type="bullet">
/// <item>mmlu: <c>data/{test,val,dev}/SUBJECT_{test,val,dev}.csv</c>, no header: question, A, B, C, D, answer.</item>
/// <item>cmmlu: <c>{test,dev}/SUBJECT.csv</c>, a header, an index column, then Question, A, B, C, D, Answer.</item>
/// <item>ceval: <c>{test,val,dev}/SUBJECT_{test,val,dev}.csv</c>, a header: id, question, A, B, C, D, answer, explanation
/// (test files have no answer).</item>
/// </list>
/// </summary>
public sealed class BenchmarkTask
{
    private static readonly string[] Letters = ["A", "B", "C", "D"];
    private static readonly string[] Splits = ["train", "validation", "test"];

    private readonly Func<string, string?> readFile;
    private readonly string location;

    public string Benchmark { get; }
    public string Split { get; }
    public IReadOnlyList<BenchmarkSubject> Subjects { get; }

    private BenchmarkTask(string benchmark, string split, IReadOnlyList<BenchmarkSubject> subjects, Func<string, string?> readFile, string location)
    {
        Benchmark = benchmark;
        Split = split;
        Subjects = subjects;
        this.readFile = readFile;
        this.location = location;
    }

    /// <exception cref="ArgumentException">The task name is not NAME_SPLIT of a known benchmark and split.</exception>
    /// <exception cref="FileNotFoundException">The benchmark folder or its mapping.json is missing.</exception>
    /// <exception cref="InvalidDataException">mapping.json is malformed.</exception>
    public static BenchmarkTask Open(string taskDir, string task)
    {
        int underscore = task.IndexOf('_');
        string benchmark = underscore < 0 ? task : task[..underscore];
        string split = underscore < 0 ? "" : task[(underscore + 1)..];
        if (benchmark is not ("mmlu" or "cmmlu" or "ceval"))
            throw new ArgumentException($"task: '{task}' is not a benchmark SharpTune reads (mmlu_test, cmmlu_test, ceval_validation, or another split of mmlu, cmmlu, ceval)");
        if (!Splits.Contains(split) || benchmark == "cmmlu" && split == "validation")
            throw new ArgumentException($"task: '{task}' names no split of {benchmark} (splits: {string.Join(", ", benchmark == "cmmlu" ? ["train", "test"] : Splits)})");

        string folder = Path.Combine(taskDir, benchmark);
        string mappingPath = Path.Combine(folder, "mapping.json");
        if (!File.Exists(mappingPath))
            throw new FileNotFoundException($"task: '{mappingPath}' does not exist; put LLaMA-Factory's {benchmark} evaluation set (mapping.json and {benchmark}.zip) in task_dir '{taskDir}'", mappingPath);
        var subjects = ReadMapping(mappingPath);

        string zipPath = Path.Combine(folder, benchmark + ".zip");
        Func<string, string?> readFile;
        string location;
        if (File.Exists(zipPath))
        {
            var entries = new Dictionary<string, string>(StringComparer.Ordinal);
            using (var zip = ZipFile.OpenRead(zipPath))
                foreach (var entry in zip.Entries.Where(e => e.FullName.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)))
                {
                    using var reader = new StreamReader(entry.Open());
                    entries[entry.FullName] = reader.ReadToEnd();
                }
            readFile = relative => entries.GetValueOrDefault(relative);
            location = zipPath;
        }
        else
        {
            readFile = relative => File.Exists(Path.Combine(folder, relative)) ? File.ReadAllText(Path.Combine(folder, relative)) : null;
            location = folder;
        }
        return new BenchmarkTask(benchmark, split, subjects, readFile, location);
    }

    /// <summary>The questions of a subject in a split (<c>train</c> gives the few-shot examples).</summary>
    /// <exception cref="InvalidDataException">The subject's file is missing or malformed; the message names it.</exception>
    public IReadOnlyList<BenchmarkQuestion> Questions(BenchmarkSubject subject, string split)
    {
        string relative = RelativePath(subject.Name, split);
        string source = $"{location}: {relative}";
        string text = readFile(relative) ?? throw new InvalidDataException($"{source} does not exist (subject '{subject.Name}' of mapping.json, split {split})");
        var rows = CsvReader.Parse(text, source);
        var questions = new List<BenchmarkQuestion>();
        if (Benchmark == "mmlu")
        {
            for (int r = 0; r < rows.Count; r++)
            {
                if (rows[r].Length != 6) throw new InvalidDataException($"{source}: record {r + 1} has {rows[r].Length} fields; mmlu rows are question, A, B, C, D, answer");
                questions.Add(new BenchmarkQuestion(rows[r][0], Letters.Select((l, i) => (l, rows[r][i + 1])).ToList(), rows[r][5]));
            }
            return questions;
        }

        if (rows.Count == 0) throw new InvalidDataException($"{source}: no header row");
        var header = rows[0];
        // cmmlu's first column is pandas' index column; its questions and answers are capitalised.
        int skip = Benchmark == "cmmlu" ? 1 : 0;
        string questionColumn = Benchmark == "cmmlu" ? "Question" : "question";
        string answerColumn = Benchmark == "cmmlu" ? "Answer" : "answer";
        int Column(string name) => Array.IndexOf(header, name, skip);
        int question = Column(questionColumn);
        if (question < 0) throw new InvalidDataException($"{source}: the header has no '{questionColumn}' column");
        int answer = Column(answerColumn);
        var letterColumns = Letters.Select(l => (Letter: l, Index: Column(l))).Where(c => c.Index >= 0).ToList();
        for (int r = 1; r < rows.Count; r++)
        {
            var row = rows[r];
            if (row.Length != header.Length) throw new InvalidDataException($"{source}: record {r} has {row.Length} fields, the header {header.Length}");
            questions.Add(new BenchmarkQuestion(row[question], letterColumns.Select(c => (c.Letter, row[c.Index])).ToList(), answer < 0 ? "" : row[answer]));
        }
        return questions;
    }

    private string RelativePath(string subject, string split)
    {
        string folder = split switch { "train" => "dev", "validation" => "val", _ => "test" };
        return Benchmark switch
        {
            "mmlu" => $"data/{folder}/{subject}_{folder}.csv",
            "cmmlu" => $"{folder}/{subject}.csv",
            _ => $"{folder}/{subject}_{folder}.csv",
        };
    }

    private static List<BenchmarkSubject> ReadMapping(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: expected an object of subjects");
            var subjects = new List<BenchmarkSubject>();
            foreach (var subject in doc.RootElement.EnumerateObject())
            {
                string Field(string key) =>
                    subject.Value.ValueKind == JsonValueKind.Object && subject.Value.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String
                        ? v.GetString()!
                        : throw new InvalidDataException($"{path}: subject '{subject.Name}' has no '{key}' string");
                string category = Field("category");
                if (!BenchmarkResult.Categories.Contains(category))
                    throw new InvalidDataException($"{path}: subject '{subject.Name}' has category '{category}'; LLaMA-Factory's are {string.Join(", ", BenchmarkResult.Categories.Skip(1))}");
                subjects.Add(new BenchmarkSubject(subject.Name, Field("name"), category));
            }
            if (subjects.Count == 0) throw new InvalidDataException($"{path}: no subjects");
            return subjects;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }
}
