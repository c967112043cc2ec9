using System.CommandLine;
using SharpTune.Data.Cleaning;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune data dedup|scrub|clean IN --out OUT [--report R.jsonl] [--dry-run]`: cleaning steps over one dataset file
/// (JSON array or JSON Lines), written in the input's format, atomically, never over the input. Each prints one
/// summary line with the counts per reason; the report lists every removed or changed record with its reason and rule.
/// </summary>
public static class DataCommands
{
    public static Command Create() => new("data", "Inspect and clean a dataset file before training: look at what it holds, remove duplicates, scrub personal data, normalise and filter")
    {
        Dedup(),
        Scrub(),
        Clean(),
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
            return common.Finish(r, "dedup", Deduplicator.Run(common.Input(r), options));
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
            common.Finish(r, "scrub", PersonalDataScrubber.Run(common.Input(r), r.GetValue(region)!, r.GetValue(drop)))));
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
        var command = new Command("clean", "Normalise text (Unicode, white space, control characters, empty-input markers) and remove empty, too short or long, repetitive, symbol-heavy or unanswerable records")
        {
            recipe, fields, unicode, minChars, maxChars, blockKeywords,
        };
        common.AddTo(command);
        command.SetAction(r => CliAction.Run(() =>
        {
            var settings = new List<(string, string, string)>();
            if (r.GetValue(unicode) is { } form) settings.Add(("unicode_normalization", "form", form));
            if (r.GetValue(minChars) is { } min) settings.Add(("text_length", "min", min));
            if (r.GetValue(maxChars) is { } max) settings.Add(("text_length", "max", max));
            if (r.GetValue(blockKeywords) is { } keywords) settings.Add(("blocked_keywords", "keywords", keywords));
            var cleaning = CleaningRecipe.Create(r.GetValue(recipe), settings,
                r.GetValue(fields)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
            return common.Finish(r, "clean", DatasetCleaner.Run(common.Input(r), cleaning));
        }));
        return command;
    }

    /// <summary>IN, --out, --report and --dry-run, the same for every data command.</summary>
    private sealed class CommonOptions
    {
        private readonly Argument<string> input = new("input") { Description = "Dataset file: a JSON array (.json) or JSON Lines (.jsonl)" };
        private readonly Option<string?> output = new("--out") { Description = "Where to write the result, in the input's format (required unless --dry-run)" };
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

        public int Finish(ParseResult r, string step, CleaningResult result)
        {
            bool dry = r.GetValue(dryRun);
            string? outPath = r.GetValue(output), reportPath = r.GetValue(report);
            if (!dry && outPath is null) throw new ArgumentException("--out is required (or --dry-run to see the report only)");
            result.Save(dry ? null : outPath, reportPath);
            int read = result.Input.Records.Count, written = result.Output.Count;
            string summary = $"{step}: {read} records read, {written} written, {read - written} removed, {result.Report.Entries - (read - written)} changed ({result.Report.CountsText()})"
                + (dry ? "; dry run, nothing written" : $" -> {outPath}") + (reportPath is null ? "" : $"; report {reportPath}");
            if (dry && reportPath is null)
            {
                // stdout carries the report itself; the summary goes beside it.
                using var lines = new MemoryStream();
                result.Report.WriteTo(lines);
                Console.Out.Write(System.Text.Encoding.UTF8.GetString(lines.ToArray()));
                Console.Error.WriteLine(summary);
            }
            else Console.WriteLine(summary);
            return 0;
        }
    }
}
