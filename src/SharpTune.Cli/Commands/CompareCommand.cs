using System.CommandLine;
using System.Globalization;
using SharpTune.Chat;
using SharpTune.Evaluation.Comparison;
using SharpTune.Evaluation.Prediction;
using SharpTune.Hparams;
using SharpTune.Hub;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Peft.Lora;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune compare`: asks the base model and the base with each adapter the same questions, with the same
/// decoding settings and seeds, and writes compare.md and compare.html side by side (with the reference answers and
/// BLEU-4/ROUGE-L when the questions have them). The models are loaded one after another, so memory holds one at a time.
/// </summary>
public static class CompareCommand
{
    public const int DefaultSeed = 42;

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base model folder (config.json, *.safetensors, tokenizer.json)", Required = true };
        var adapter = new Option<string[]>("--adapter") { Description = "LoRA adapter folder to compare against the base; repeat for one column per adapter", Required = true };
        var questions = new Option<string?>("--questions") { Description = "Questions file: one question per line (.txt), or .json/.jsonl objects with \"question\" and optional \"reference\" and \"system\"" };
        var dataset = new Option<string[]>("--dataset") { Description = "Dataset names from dataset_info.json (comma-separated or repeated); each record's answer is the reference" };
        var datasetDir = new Option<string>("--dataset-dir") { Description = "Folder holding dataset_info.json", DefaultValueFactory = _ => "data" };
        var maxSamples = new Option<int?>("--max-samples") { Description = "Ask only the first N records of each dataset" };
        var template = new Option<string>("--template") { Description = "Chat template name, or 'auto' to read it from tokenizer_config.json", DefaultValueFactory = _ => "auto" };
        var system = new Option<string?>("--system") { Description = "System prompt for questions that bring none (default: the template's)" };
        var batchSize = new Option<int>("--batch-size") { Description = "Questions generated together (left-padded)", DefaultValueFactory = _ => 4 };
        var output = new Option<string>("--out") { Description = "Folder for compare.md and compare.html", DefaultValueFactory = _ => "compare" };
        var quantizationArguments = new QuantizationArguments();
        var generation = new GenerationArguments();

        var command = new Command("compare", "Ask the base model and each adapter the same questions and write a side-by-side report (compare.md, compare.html). Greedy unless --temperature > 0; seed 42 unless --seed.")
        {
            model, adapter, questions, dataset, datasetDir, maxSamples, template, system, batchSize, output,
        };
        quantizationArguments.AddTo(command);
        generation.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            string modelDir = HubDownload.FolderFor(r.GetValue(model)!);
            string[] adapters = (r.GetValue(adapter) ?? []).Select(HubDownload.FolderFor).ToArray();
            string? questionsFile = r.GetValue(questions);
            var datasetNames = (r.GetValue(dataset) ?? []).ToList();
            if ((questionsFile is null) == (datasetNames.Count == 0))
                throw new ArgumentException("give the questions either as --questions FILE or as --dataset NAME (not both)");
            if (questionsFile is not null && r.GetValue(maxSamples) is not null)
                throw new ArgumentException("--max-samples applies to --dataset only");
            if (r.GetValue(batchSize) <= 0) throw new ArgumentException($"--batch-size must be positive, got {r.GetValue(batchSize)}");
            var quantization = quantizationArguments.Read(r);

            ModelFolder.Validate(modelDir);
            ModelFolder.ValidateTokenizer(modelDir);
            // Every adapter is read before anything is generated, so a wrong folder fails in seconds, not after the base's answers.
            foreach (string dir in adapters) LoraAdapter.Load(dir);
            var tokenizer = Tokenizer.FromDirectory(modelDir);
            var chatTemplate = ChatTemplates.ForModel(r.GetValue(template), modelDir, tokenizer);
            var config = ModelConfig.Load(ModelFolder.ConfigPath(modelDir));
            var defaults = GenerationOptions.FromModelFolder(modelDir, config) with { DoSample = false, Seed = DefaultSeed };
            var options = generation.Apply(r, defaults);
            options = ChatSession.WithTemplateStops(options, tokenizer, chatTemplate);

            IReadOnlyList<ComparisonQuestion> asked = questionsFile is not null
                ? ComparisonQuestions.FromFile(questionsFile, tokenizer, chatTemplate, r.GetValue(system))
                : ComparisonQuestions.FromDatasets(new DataArguments
                {
                    Dataset = [],
                    EvalDataset = datasetNames,
                    DatasetDir = r.GetValue(datasetDir)!,
                    MaxSamples = r.GetValue(maxSamples),
                    DefaultSystem = r.GetValue(system),
                }, tokenizer, chatTemplate, options.Seed ?? DefaultSeed);
            string source = questionsFile is not null
                ? $"{questionsFile} ({asked.Count} questions)"
                : $"dataset {string.Join(", ", datasetNames)} in {r.GetValue(datasetDir)} ({asked.Count} records{(r.GetValue(maxSamples) is int n ? $", max_samples {n}" : "")})";
            Log($"{asked.Count} questions from {source}; template {chatTemplate.Name}; {Decoding(options)}");

            int padTokenId = TokenizerConfig.PadTokenId(tokenizer, modelDir);
            var names = ColumnNames(adapters);
            var columns = new List<ComparisonColumn>();
            for (int c = 0; c <= adapters.Length; c++)
            {
                string? adapterDir = c == 0 ? null : adapters[c - 1];
                using var loaded = DecoderModel.Load(modelDir, adapterDirectories: adapterDir is null ? [] : [adapterDir], quantization: quantization);
                if (c == 0) CliAction.ReportBackend(loaded.Backend);
                Log($"answering with {names[c]}{(adapterDir is null ? "" : $" ({adapterDir})")}");
                columns.Add(ComparisonRun.Answer(names[c], adapterDir, loaded, tokenizer, asked, options, r.GetValue(batchSize), padTokenId,
                    PredictionProgress.ForStandardError(names[c])));
            }

            var setup = new List<KeyValuePair<string, string>>
            {
                new("Base model", modelDir),
                new("Adapters", string.Join(", ", adapters)),
                new("Questions", source),
                new("Template", chatTemplate.Name),
                new("Decoding", Decoding(options)),
            };
            if (quantization is not null) setup.Add(new("Quantization", quantization.ToString()));
            var (markdownPath, htmlPath) = new ComparisonReport(setup, asked, columns).Write(r.GetValue(output)!);
            foreach (var column in columns)
            {
                var mean = column.MeanScores();
                string scores = mean is null ? "" : string.Create(CultureInfo.InvariantCulture, $", BLEU-4 {mean["bleu-4"]:0.00}, ROUGE-L {mean["rouge-l"]:0.00}");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{column.Name}: {column.Answers.Average(a => a.Tokens):0.0} tokens per answer{scores}"));
            }
            Log($"report written to {markdownPath} and {htmlPath}");
            return 0;
        }));
        return command;
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

    private static void Log(string message) => Console.Error.WriteLine($"[sharptune] {message}");
}
