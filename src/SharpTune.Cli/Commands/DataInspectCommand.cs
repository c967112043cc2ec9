using System.CommandLine;
using SharpTune.Data.Cleaning;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune data inspect DATASET|FILE [--dataset-dir D] [--tokenizer DIR --template T --cutoff-len N] [--html F] [--json]`:
/// what a dataset holds before training on it. An existing file is inspected with its format detected; anything else
/// is a dataset name from dataset_dir's dataset_info.json, read as training reads it.
/// </summary>
public static class DataInspectCommand
{
    public static Command Create()
    {
        var dataset = new Argument<string>("dataset") { Description = "A dataset file (.json array or .jsonl), or a dataset name from dataset_info.json" };
        var datasetDir = new Option<string>("--dataset-dir") { Description = "Folder with dataset_info.json, for a dataset name", DefaultValueFactory = _ => "data" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Model folder (tokenizer.json, tokenizer_config.json): count prompt and trained tokens as training encodes them" };
        var template = new Option<string>("--template") { Description = "Chat template (with --tokenizer); auto: the model folder's", DefaultValueFactory = _ => "auto" };
        var cutoffLen = new Option<int>("--cutoff-len") { Description = "cutoff_len whose cuts are reported (with --tokenizer)", DefaultValueFactory = _ => 2048 };
        var html = new Option<string?>("--html") { Description = "Also write a self-contained HTML report with charts to this file" };
        var json = new Option<bool>("--json") { Description = "Print the summary as JSON instead of text" };
        var command = new Command("inspect", "Show what a dataset holds: records, format, empty and missing fields, exact duplicates, lengths in characters and tokens, cuts at cutoff_len, languages")
        {
            dataset, datasetDir, tokenizer, template, cutoffLen, html, json,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            TokenCounting? tokens = null;
            if (r.GetValue(tokenizer) is { } dir)
            {
                var t = Tokenizer.FromDirectory(dir);
                tokens = new TokenCounting(t, ChatTemplates.ForModel(r.GetValue(template), dir, t), r.GetValue(cutoffLen));
            }
            else if (r.GetResult(template) is { Implicit: false } || r.GetResult(cutoffLen) is { Implicit: false })
                throw new ArgumentException("--template and --cutoff-len count tokens, which needs --tokenizer (a model folder)");
            string name = r.GetValue(dataset)!;
            var inspection = File.Exists(name)
                ? DatasetInspector.InspectFile(name, tokens)
                : DatasetInspector.InspectRegistered(r.GetValue(datasetDir)!, name, tokens);
            var report = new InspectionReport(inspection);
            if (r.GetValue(html) is { } htmlPath) report.WriteHtml(htmlPath);
            Console.Out.Write(r.GetValue(json) ? report.ToJson() : report.ToText());
            if (r.GetValue(html) is { } written && !r.GetValue(json)) Console.WriteLine($"html report: {written}");
            return 0;
        }));
        return command;
    }
}
