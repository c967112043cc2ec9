using System.CommandLine;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Data.Cleaning;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune data dedup|scrub|clean|convert IN --out OUT [--report R.jsonl] [--dry-run]`: steps over one dataset file
/// (JSON array or JSON Lines; convert also reads CSV and Parquet), written atomically, never over the input, in the
/// input's format (convert: in the format asked for, JSON or JSON Lines by --out's extension). Each prints one
/// summary line with the counts per reason; the report lists every removed or changed record with its reason and rule.
/// </summary>
public static class DataCommands
{
    public static Command Create() => new("data", "Inspect and clean a dataset file before training: look at what it holds, remove duplicates, scrub personal data, normalise and filter")
    {
        Dedup(),
        Scrub(),
        Clean(),
        Convert(),
        DataInspectCommand.Create(),
        DataBuildCommand.Create(),
    };

    private static Command Dedup()
    {
        var common = new CommonOptions();
        var near = new Option<bool>("--near") { Description = "Also remove near duplicates (MinHash LSH over n-gram shingles)" };
        var threshold = new Option<double>("--threshold") { Description = "Jaccard similarity from which records are near duplicates", DefaultValueFactory = _ => 0.8 };
        var ngram = new Option<int>("--ngram") { Description = "Shingle length (characters, or words with --words)", DefaultValueFactory = _ => 5 };
        var words = new Option<bool>("--words") { Description = "Shingles of words rather than characters (for space-separated languages only)" };
        var numPerm = new Option<int>("--num-perm") { Description = "MinHash permutations", DefaultValueFactory = _ => 128 };
        var bands = new Option<int?>("--bands") { Description = "LSH bands (with --rows); default: datasketch's optimum for the threshold" };
        var rows = new Option<int?>("--rows") { Description = "LSH rows per band (with --bands)" };
        var fields = new Option<string?>("--fields") { Description = "Comma-separated top-level fields to compare; default: every string value of the record" };
        var command = new Command("dedup", "Remove exact (and with --near, near) duplicate records, keeping the first of each cluster")
        {
            near, threshold, ngram, words, numPerm, bands, rows, fields,
        };
        common.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            if (r.GetValue(bands).HasValue != r.GetValue(rows).HasValue) throw new ArgumentException("--bands and --rows go together");
            var options = new DedupOptions(
                r.GetValue(fields)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                r.GetValue(near), r.GetValue(threshold), r.GetValue(ngram),
                r.GetValue(words) ? ShingleUnit.Word : ShingleUnit.Character, r.GetValue(numPerm),
                r.GetValue(bands) is { } b ? new LshBands(b, r.GetValue(rows)!.Value) : null);
            return common.Finish(r, "dedup", targets => Deduplicator.Run(common.Input(r), options).Save(targets));
        }));
        return command;
    }

    private static Command Scrub()
    {
        var common = new CommonOptions();
        var region = new Option<string>("--phone-region") { Description = "Region whose national phone numbers are recognised (+country numbers are in any)", DefaultValueFactory = _ => PersonalDataScrubber.DefaultPhoneRegion };
        var drop = new Option<bool>("--drop") { Description = "Leave out records holding personal data instead of replacing it" };
        var command = new Command("scrub", "Replace e-mails, phone numbers, China ID numbers, bank cards and IP addresses with <EMAIL>, <PHONE>, <ID_CARD>, <BANK_CARD>, <IP>")
        {
            region, drop,
        };
        common.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
            common.Finish(r, "scrub", targets => PersonalDataScrubber.Run(common.Input(r), targets, r.GetValue(region)!, r.GetValue(drop)))));
        return command;
    }

    private static Command Clean()
    {
        var common = new CommonOptions();
        var recipe = new Option<string?>("--recipe") { Description = "YAML recipe: the rules to run and their parameters (default: every rule but punctuation, special_characters and the block lists, with data-juicer's defaults)" };
        var fields = new Option<string?>("--fields") { Description = "Comma-separated top-level fields the rules look at; default: every string value of the record" };
        var unicode = new Option<string?>("--unicode") { Description = "Unicode normalisation form, NFC or NFKC (sets unicode_normalization.form)" };
        var minChars = new Option<string?>("--min-chars") { Description = "Fewest characters a record's text may have (sets text_length.min; default 10)" };
        var maxChars = new Option<string?>("--max-chars") { Description = "Most characters a record's text may have (sets text_length.max)" };
        var blockKeywords = new Option<string?>("--block-keywords") { Description = "Comma-separated words or phrases whose records are removed (sets blocked_keywords.keywords)" };
        var lang = new Option<string?>("--lang") { Description = "Comma-separated ISO 639-1 codes of the languages to keep, e.g. en,zh (sets language_id.lang; Lingua identifies the language)" };
        var minLangScore = new Option<string?>("--min-lang-score") { Description = "Least confidence of the identified language (sets language_id.min_score; default 0.8)" };
        var minTokens = new Option<string?>("--min-tokens") { Description = "Fewest tokens a record may have as training encodes it, prompt + trained (sets token_num.min; default 10; needs --tokenizer)" };
        var maxTokens = new Option<string?>("--max-tokens") { Description = "Most tokens a record may have as training encodes it, prompt + trained (sets token_num.max; needs --tokenizer)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Model folder (tokenizer.json, tokenizer_config.json) token_num counts with (sets token_num.tokenizer)" };
        var template = new Option<string?>("--template") { Description = "Chat template token_num encodes records with; default auto: the model folder's (sets token_num.template)" };
        var command = new Command("clean", "Normalise text (Unicode, white space, control characters, empty-input markers) and remove empty, too short or long (characters or tokens), repetitive, symbol-heavy, other-language or unanswerable records")
        {
            recipe, fields, unicode, minChars, maxChars, blockKeywords, lang, minLangScore, minTokens, maxTokens, tokenizer, template,
        };
        common.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            var settings = new List<(string, string, string)>();
            if (r.GetValue(unicode) is { } form) settings.Add(("unicode_normalization", "form", form));
            if (r.GetValue(minChars) is { } min) settings.Add(("text_length", "min", min));
            if (r.GetValue(maxChars) is { } max) settings.Add(("text_length", "max", max));
            if (r.GetValue(blockKeywords) is { } keywords) settings.Add(("blocked_keywords", "keywords", keywords));
            if (r.GetValue(lang) is { } languages) settings.Add(("language_id", "lang", languages));
            if (r.GetValue(minLangScore) is { } score) settings.Add(("language_id", "min_score", score));
            if (r.GetValue(minTokens) is { } fewest) settings.Add(("token_num", "min", fewest));
            if (r.GetValue(maxTokens) is { } most) settings.Add(("token_num", "max", most));
            if (r.GetValue(tokenizer) is { } folder) settings.Add(("token_num", "tokenizer", folder));
            if (r.GetValue(template) is { } name) settings.Add(("token_num", "template", name));
            var cleaning = CleaningRecipe.Create(r.GetValue(recipe), settings,
                r.GetValue(fields)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
            return common.Finish(r, "clean", targets => DatasetCleaner.Run(common.Input(r), cleaning, targets));
        }));
        return command;
    }

    private static Command Convert()
    {
        var common = new CommonOptions("Dataset file: a JSON array (.json), JSON Lines (.jsonl), CSV (.csv, a header row) or Parquet (.parquet)",
            "Where to write the result: a JSON array (.json) or JSON Lines (.jsonl) (required unless --dry-run)");
        string[] layouts = ["alpaca", "sharegpt", "openai"];
        var to = new Option<string?>("--to") { Description = "Format to write: alpaca, sharegpt or openai (default: the input's)" };
        to.AcceptOnlyFromAmong(layouts);
        var from = new Option<string?>("--from") { Description = "The input's format: alpaca, sharegpt or openai (default: detected from the records' fields)" };
        from.AcceptOnlyFromAmong(layouts);
        var columns = new Option<string?>("--columns") { Description = "The input's dataset_info.json columns, e.g. prompt=question,response=answer (replacing the format's defaults, as in dataset_info.json)" };
        var tags = new Option<string?>("--tags") { Description = "The input's dataset_info.json tags (sharegpt), e.g. role_tag=speaker,user_tag=me,assistant_tag=bot" };
        var datasetInfo = new Option<string?>("--dataset-info") { Description = "dataset_info.json (or its folder) to add the output's entry to, or update it in" };
        var name = new Option<string?>("--name") { Description = "The entry's dataset name (default: the output's file name without extension)" };
        var lenient = new Option<bool>("--lenient") { Description = "Leave out records that cannot be read or written in the target format (listed in the report) instead of stopping at the first" };
        var command = new Command("convert", "Convert a dataset between alpaca, sharegpt and OpenAI messages, JSON and JSON Lines (CSV and Parquet in), and register it in dataset_info.json")
        {
            to, from, columns, tags, datasetInfo, name, lenient,
        };
        common.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            string? outPath = common.Output(r);
            string? infoPath = r.GetValue(datasetInfo) is { } info ? DatasetInfoFile.PathFor(info) : null;
            if (infoPath is null && r.GetValue(name) is not null) throw new ArgumentException("--name names the dataset_info.json entry, which needs --dataset-info");
            string target = outPath ?? common.Input(r);
            bool jsonArray = target.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
            if (outPath is not null && !jsonArray && !outPath.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--out {outPath}: LLaMA-Factory datasets are written as a JSON array (.json) or JSON Lines (.jsonl)");
            var conversion = FormatConverter.Open(common.Input(r), new ConvertOptions(
                r.GetValue(from) is { } f ? FormatConverter.Parse(f) : null, Pairs(r.GetValue(columns), "--columns"), Pairs(r.GetValue(tags), "--tags"),
                r.GetValue(to) is { } t ? FormatConverter.Parse(t) : null, r.GetValue(lenient)));
            string fileName = infoPath is null ? Path.GetFileName(target) : DatasetInfoFile.FileNameFor(infoPath, target);
            string entryName = r.GetValue(name) ?? Path.GetFileNameWithoutExtension(target);
            JsonObject entry = null!;
            string? infoText = null;
            common.Finish(r, $"convert {FormatConverter.Name(conversion.From)} -> {FormatConverter.Name(conversion.To)}", targets =>
            {
                (var summary, entry) = conversion.Write(targets, jsonArray, fileName,
                    // Checked before the output is put in place, so a bad dataset_info.json leaves no output behind either.
                    written => infoText = infoPath is null ? null : DatasetInfoFile.WithEntry(infoPath, entryName, written));
                return summary;
            });
            string entryJson = entry.ToJsonString();
            if (infoPath is null) Console.Error.WriteLine($"dataset_info.json entry (add it with --dataset-info): \"{entryName}\": {entryJson}");
            else if (common.DryRun(r)) Console.Error.WriteLine($"dry run: {infoPath} not changed; its entry would be \"{entryName}\": {entryJson}");
            else
            {
                DatasetInfoFile.Write(infoPath, infoText!);
                Console.WriteLine($"{infoPath}: entry '{entryName}' written");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>KEY=VALUE pairs separated by commas, as --columns and --tags take them.</summary>
    private static Dictionary<string, string>? Pairs(string? text, string option)
    {
        if (text is null) return null;
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string pair in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int equals = pair.IndexOf('=');
            if (equals <= 0 || equals == pair.Length - 1)
                throw new ArgumentException($"{option}: '{pair}' is not KEY=VALUE (e.g. prompt=question)");
            if (!pairs.TryAdd(pair[..equals].Trim(), pair[(equals + 1)..].Trim()))
                throw new ArgumentException($"{option}: '{pair[..equals].Trim()}' is given twice");
        }
        return pairs;
    }

    /// <summary>IN, --out, --report and --dry-run, the same for every data command.</summary>
    private sealed class CommonOptions(
        string inputDescription = "Dataset file: a JSON array (.json) or JSON Lines (.jsonl)",
        string outputDescription = "Where to write the result, in the input's format (required unless --dry-run)")
    {
        private readonly Argument<string> input = new("input") { Description = inputDescription };
        private readonly Option<string?> output = new("--out") { Description = outputDescription };
        private readonly Option<string?> report = new("--report") { Description = "JSONL of every removed or changed record with its reason and rule" };
        private readonly Option<bool> dryRun = new("--dry-run") { Description = "Write no output: only the report (to --report, or to stdout) and the summary" };

        public void AddTo(Command command)
        {
            command.Add(input);
            command.Add(output);
            command.Add(report);
            command.Add(dryRun);
        }

        public string Input(ParseResult r) => r.GetValue(input)!;

        public string? Output(ParseResult r) => r.GetValue(output);

        public bool DryRun(ParseResult r) => r.GetValue(dryRun);

        /// <summary>Runs the step <paramref name="run"/> into the targets the options name, then prints its one-line summary.</summary>
        public int Finish(ParseResult r, string step, Func<StepTargets, StepSummary> run)
        {
            bool dry = r.GetValue(dryRun);
            string? outPath = r.GetValue(output), reportPath = r.GetValue(report);
            if (!dry && outPath is null) throw new ArgumentException("--out is required (or --dry-run to see the report only)");
            // A dry run with no --report prints the report itself on stdout, line by line as the step goes; the summary goes beside it.
            bool reportToStdout = dry && reportPath is null;
            var result = run(new StepTargets(dry ? null : outPath, reportPath,
                reportToStdout ? line => Console.Out.Write(System.Text.Encoding.UTF8.GetString(line) + "\n") : null));
            int read = result.Read, written = result.Written;
            string summary = $"{step}: {read} records read, {written} written, {read - written} removed, {result.Report.Entries - (read - written)} changed ({result.Report.CountsText()})"
                + (dry ? "; dry run, nothing written" : $" -> {outPath}") + (reportPath is null ? "" : $"; report {reportPath}");
            if (reportToStdout) Console.Error.WriteLine(summary);
            else Console.WriteLine(summary);
            return 0;
        }
    }
}
