using System.Globalization;
using SharpTune.Chat;
using SharpTune.Evaluation.Comparison;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Workflows;

/// <summary>What a comparison asks: the base, the adapters, where the questions come from, how to decode, where to write.</summary>
/// <param name="QuestionsFile">A questions file, or null when the questions are <paramref name="Datasets"/>' records.</param>
/// <param name="Decoding">Turns the model folder's options (greedy, seed <see cref="CompareWorkflow.DefaultSeed"/>) into the run's.</param>
/// <param name="ConfineDatasetFilesTo">A root the datasets' files must lie in (<see cref="DataArguments.ConfineDatasetFilesTo"/>), for a server asking on someone's behalf; null for the command line.</param>
public sealed record CompareRequest(
    string ModelDir,
    IReadOnlyList<string> Adapters,
    string? QuestionsFile,
    IReadOnlyList<string> Datasets,
    string DatasetDir,
    int? MaxSamples,
    string Template,
    string? System,
    int BatchSize,
    string OutputDir,
    QuantizationOptions? Quantization,
    Func<GenerationOptions, GenerationOptions> Decoding,
    string? ConfineDatasetFilesTo = null);

/// <summary>The questions asked, the answers of every model (in question order), and the report files.</summary>
public sealed record CompareResult(IReadOnlyList<ComparisonQuestion> Questions, IReadOnlyList<ComparisonColumn> Columns, string MarkdownPath, string HtmlPath);

/// <summary>
/// `sharptune compare` as a library call: asks the base model and the base with each adapter the same questions, with
/// the same decoding settings and seeds, and writes compare.md and compare.html side by side (with the reference
/// answers and BLEU-4/ROUGE-L when the questions have them). The models are loaded one after another, so memory holds
/// one at a time; cancellation is honoured between models and between batches, before the report is written.
/// </summary>
public static class CompareWorkflow
{
    public const int DefaultSeed = 42;

    public static CompareResult Run(CompareRequest request, CancellationToken cancellation, IRunObserver observer) =>
        Workflow.Observed("compare", observer, () => Execute(request, cancellation, observer));

    private static CompareResult Execute(CompareRequest r, CancellationToken cancellation, IRunObserver observer)
    {
        if ((r.QuestionsFile is null) == (r.Datasets.Count == 0))
            throw new ArgumentException("give the questions either as --questions FILE or as --dataset NAME (not both)");
        if (r.QuestionsFile is not null && r.MaxSamples is not null)
            throw new ArgumentException("--max-samples applies to --dataset only");
        if (r.BatchSize <= 0) throw new ArgumentException($"--batch-size must be positive, got {r.BatchSize}");

        string modelDir = r.ModelDir;
        ModelFolder.Validate(modelDir);
        ModelFolder.ValidateTokenizer(modelDir);
        // Every adapter is read before anything is generated, so a wrong folder fails in seconds, not after the base's answers.
        foreach (string dir in r.Adapters) PeftAdapterFolders.Read(dir);
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var chatTemplate = ChatTemplates.ForModel(r.Template, modelDir, tokenizer);
        var config = ModelConfig.Load(ModelFolder.ConfigPath(modelDir));
        var defaults = GenerationOptions.FromModelFolder(modelDir, config) with { DoSample = false, Seed = DefaultSeed };
        var options = r.Decoding(defaults);
        options = ChatSession.WithTemplateStops(options, tokenizer, chatTemplate);

        IReadOnlyList<ComparisonQuestion> asked = r.QuestionsFile is not null
            ? ComparisonQuestions.FromFile(r.QuestionsFile, tokenizer, chatTemplate, r.System)
            : ComparisonQuestions.FromDatasets(new DataArguments
            {
                Dataset = [],
                EvalDataset = r.Datasets.ToList(),
                DatasetDir = r.DatasetDir,
                MaxSamples = r.MaxSamples,
                DefaultSystem = r.System,
                ConfineDatasetFilesTo = r.ConfineDatasetFilesTo,
            }, tokenizer, chatTemplate, options.Seed ?? DefaultSeed);
        string source = r.QuestionsFile is not null
            ? $"{r.QuestionsFile} ({asked.Count} questions)"
            : $"dataset {string.Join(", ", r.Datasets)} in {r.DatasetDir} ({asked.Count} records{(r.MaxSamples is int n ? $", max_samples {n}" : "")})";
        observer.On(new RunNote($"{asked.Count} questions from {source}; template {chatTemplate.Name}; {Decoding(options)}"));
        observer.On(new RunStarted(new RunPlan("compare", null, asked.Count, BatchSize: r.BatchSize)));

        int padTokenId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
        var names = ColumnNames(r.Adapters);
        var columns = new List<ComparisonColumn>();
        for (int c = 0; c <= r.Adapters.Count; c++)
        {
            cancellation.ThrowIfCancellationRequested();
            string? adapterDir = c == 0 ? null : r.Adapters[c - 1];
            using var loaded = DecoderModel.LoadForGeneration(modelDir, adapterDirectories: adapterDir is null ? [] : [adapterDir], quantization: r.Quantization);
            if (c == 0) observer.On(new RunNote($"backend: {loaded.Backend.Describe()}"));
            observer.On(new RunNote($"answering with {names[c]}{(adapterDir is null ? "" : $" ({adapterDir})")}"));
            columns.Add(ComparisonRun.Answer(names[c], adapterDir, loaded, tokenizer, chatTemplate, asked, options, r.BatchSize, padTokenId, observer, cancellation));
        }

        var setup = new List<KeyValuePair<string, string>>
        {
            new("Base model", modelDir),
            new("Adapters", string.Join(", ", r.Adapters)),
            new("Questions", source),
            new("Template", chatTemplate.Name),
            new("Decoding", Decoding(options)),
        };
        if (r.Quantization is not null) setup.Add(new("Quantization", r.Quantization.ToString()));
        var (markdownPath, htmlPath) = new ComparisonReport(setup, asked, columns).Write(r.OutputDir);
        observer.On(new RunNote($"report written to {markdownPath} and {htmlPath}"));
        var results = columns.Select(c => new KeyValuePair<string, object?>(c.Name, c.MeanScores())).ToList();
        observer.On(new RunFinished("compare", results));
        return new CompareResult(asked, columns, markdownPath, htmlPath);
    }

    /// <summary>"base", then each adapter's folder name, numbered when two folders share a name.</summary>
    private static List<string> ColumnNames(IReadOnlyList<string> adapters)
    {
        var names = new List<string> { "base" };
        foreach (string dir in adapters)
        {
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
            string unique = name;
            for (int n = 2; names.Contains(unique); n++) unique = $"{name} ({n})";
            names.Add(unique);
        }
        return names;
    }

    private static string Decoding(GenerationOptions o) => string.Create(CultureInfo.InvariantCulture,
        $"{(o.DoSample ? $"sampling (temperature {o.Temperature}, top_p {o.TopP}, top_k {o.TopK})" : "greedy")}, max_new_tokens {o.MaxNewTokens}, repetition_penalty {o.RepetitionPenalty}, seed {o.Seed}");
}
