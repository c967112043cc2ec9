using System.CommandLine;
using System.Globalization;
using SharpTune.Data.Building;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune data build DOCS... --out DIR/NAME.json --base-url URL --model M`: an instruction dataset written by a
/// teacher model from Markdown or text documents (and/or self-instruct seed tasks); see <see cref="DatasetBuilder"/>.
/// Ctrl+C stops after the calls in flight; the same command continues from the job file.
/// </summary>
public static class DataBuildCommand
{
    public static Command Create()
    {
        var documents = new Argument<string[]>("documents") { Arity = ArgumentArity.ZeroOrMore, Description = "Markdown (.md) or text (.txt) files, or folders holding them" };
        var output = new Option<string?>("--out") { Description = "The dataset file to write (NAME.json); its folder's dataset_info.json gets the NAME entry" };
        var baseUrl = new Option<string?>("--base-url") { Description = "The teacher's OpenAI-compatible base URL, e.g. https://api.openai.com/v1 or a `sharptune api` at http://127.0.0.1:8000/v1 (default: OPENAI_BASE_URL)" };
        var apiKey = new Option<string?>("--api-key") { Description = "The teacher's API key (default: OPENAI_API_KEY)" };
        var model = new Option<string?>("--model") { Description = "The teacher's model id" };
        var questions = new Option<int>("--questions") { Description = "Questions asked per chunk", DefaultValueFactory = _ => 3 };
        var paraphrases = new Option<int>("--paraphrases") { Description = "Rewordings per answered question, each sharing its answer", DefaultValueFactory = _ => 0 };
        var lang = new Option<string>("--lang") { Description = "Prompt language: en, zh, or auto (per chunk, by its script)", DefaultValueFactory = _ => "auto" };
        var promptsFile = new Option<string?>("--prompts") { Description = "JSON file replacing built-in prompts ({\"en\": {...}, \"zh\": {...}}; see --print-prompts)" };
        var printPrompts = new Option<bool>("--print-prompts") { Description = "Print the built-in prompts as a --prompts file and exit" };
        var seedTasks = new Option<string?>("--seed-tasks") { Description = "Self-instruct seed tasks (seed_tasks.jsonl: an \"instruction\" per line)" };
        var selfInstruct = new Option<int>("--self-instruct") { Description = "New instructions to bootstrap from --seed-tasks (ROUGE-L <= 0.7 against every other)", DefaultValueFactory = _ => 0 };
        var minChars = new Option<int>("--min-chars") { Description = "Sections shorter than this (characters) are merged with a sibling", DefaultValueFactory = _ => 200 };
        var maxChars = new Option<int>("--max-chars") { Description = "Longest chunk in characters; longer sections are split at paragraphs, then sentences", DefaultValueFactory = _ => 2000 };
        var concurrency = new Option<int>("--concurrency") { Description = "Teacher calls at once", DefaultValueFactory = _ => 4 };
        var maxRetries = new Option<int>("--max-retries") { Description = "Retries of a call after 429, 5xx, a timeout or a dropped connection", DefaultValueFactory = _ => 6 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature sent to the teacher", DefaultValueFactory = _ => 0.7 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens of each reply", DefaultValueFactory = _ => 1024 };
        var seed = new Option<int?>("--seed") { Description = "Sampling seed sent to the teacher (for endpoints that honour it)" };
        var requestTimeout = new Option<int>("--request-timeout") { Description = "Seconds to wait for one reply before retrying it", DefaultValueFactory = _ => 600 };
        var recipe = new Option<string?>("--recipe") { Description = "`data clean` recipe for the generated records (default: clean's default rules)" };
        var near = new Option<bool>("--near") { Description = "Also remove near-duplicate records (MinHash LSH, as `data dedup --near`)" };
        var command = new Command("build", "Build an instruction dataset from documents with a teacher model (questions per chunk, answers grounded in it, paraphrases, self-instruct), then clean and deduplicate it")
        {
            documents, output, baseUrl, apiKey, model, questions, paraphrases, lang, promptsFile, printPrompts, seedTasks, selfInstruct,
            minChars, maxChars, concurrency, maxRetries, temperature, maxTokens, seed, requestTimeout, recipe, near,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            if (r.GetValue(printPrompts))
            {
                Console.WriteLine(BuildPrompts.DefaultsJson());
                return 0;
            }
            string outPath = r.GetValue(output) ?? throw new ArgumentException("--out is required: the dataset file to write (NAME.json)");
            string url = r.GetValue(baseUrl) ?? Environment.GetEnvironmentVariable("OPENAI_BASE_URL")
                ?? throw new ArgumentException("--base-url is required (or OPENAI_BASE_URL): the teacher's OpenAI-compatible endpoint");
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new ArgumentException($"--base-url {url}: expected an http:// or https:// URL");
            var teacher = new TeacherSettings(uri, r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("OPENAI_API_KEY"),
                r.GetValue(model) ?? throw new ArgumentException("--model is required: the teacher's model id"),
                r.GetValue(temperature), r.GetValue(maxTokens), r.GetValue(seed), r.GetValue(maxRetries),
                RequestTimeout: TimeSpan.FromSeconds(r.GetValue(requestTimeout)));
            var options = new BuildOptions(r.GetValue(documents) ?? [], outPath, new ChunkBounds(r.GetValue(minChars), r.GetValue(maxChars)),
                r.GetValue(questions), r.GetValue(paraphrases), r.GetValue(lang)!, r.GetValue(promptsFile), r.GetValue(seedTasks),
                r.GetValue(selfInstruct), r.GetValue(concurrency), r.GetValue(recipe), r.GetValue(near));
            return Run(options, teacher);
        }));
        return command;
    }

    private static int Run(BuildOptions options, TeacherSettings teacher)
    {
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (interrupt.IsCancellationRequested) return;
            e.Cancel = true;
            interrupt.Cancel();
            Console.Error.WriteLine($"[sharptune] interrupted: stopping the calls in flight (completed ones are in {options.JournalPath})");
        };
        Console.CancelKeyPress += onCancel;
        BuildSummary summary;
        try
        {
            summary = DatasetBuilder.RunAsync(options, teacher, line => Console.Error.WriteLine($"[sharptune] data build: {line}"), interrupt.Token)
                .GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            Console.Error.WriteLine("[sharptune] stopped; run the same command to continue from the job file");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        if (summary.ChangedChunks.Count > 0)
            Console.Error.WriteLine($"[sharptune] data build: {summary.ChangedChunks.Count} chunks changed since the job file recorded them (document, prompt or settings): "
                + $"asked again: {string.Join(", ", summary.ChangedChunks)}");
        foreach (string reply in summary.UnusableReplies)
            Console.Error.WriteLine($"[sharptune] data build: unusable teacher reply, left out: {reply}");
        var (cleaned, deduplicated) = (summary.Cleaned, summary.Deduplicated);
        string Count(int n) => n.ToString(CultureInfo.InvariantCulture);
        Console.WriteLine($"build: {Count(summary.Chunks)} chunks, {Count(summary.Requests)} teacher requests ({Count(summary.Retries)} retries, "
            + $"{Count(summary.Reused)} calls reused from the job file or an identical request), {Count(summary.UnusableReplies.Count)} unusable replies, "
            + $"{Count(summary.NotAnswerable)} questions not answerable from their chunk, {Count(summary.SimilarInstructions)} self-instruct instructions too similar; "
            + $"{Count(summary.Generated)} records generated, clean removed {Count(cleaned.Read - cleaned.Written)} ({cleaned.Report.CountsText()}), "
            + $"dedup removed {Count(deduplicated.Read - deduplicated.Written)} ({deduplicated.Report.CountsText()}); "
            + $"{Count(summary.Kept)} records kept -> {options.OutputPath} (dataset \"{options.DatasetName}\" in dataset_info.json)");
        return 0;
    }
}
