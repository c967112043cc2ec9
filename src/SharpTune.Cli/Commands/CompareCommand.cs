using System.CommandLine;
using System.Globalization;
using SharpTune.Hub;
using SharpTune.Training;
using SharpTune.Workflows;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune compare`: parses the options into a <see cref="CompareRequest"/>, runs <see cref="CompareWorkflow"/>
/// with the console as its observer and Ctrl+C as its cancellation (exit code 130, no report written), and prints each
/// model's answer length and mean scores.
/// </summary>
public static class CompareCommand
{
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
            var request = new CompareRequest(
                HubDownload.FolderFor(r.GetValue(model)!),
                (r.GetValue(adapter) ?? []).Select(HubDownload.FolderFor).ToArray(),
                r.GetValue(questions),
                r.GetValue(dataset) ?? [],
                r.GetValue(datasetDir)!,
                r.GetValue(maxSamples),
                r.GetValue(template)!,
                r.GetValue(system),
                r.GetValue(batchSize),
                r.GetValue(output)!,
                quantizationArguments.Read(r),
                defaults => generation.Apply(r, defaults));
            using var interrupt = CtrlCInterrupt.Armed("stopping before the next batch");
            return interrupt.Run(() =>
            {
                var result = CompareWorkflow.Run(request, interrupt.Token, new RunObservers(new ConsoleRunObserver(), interrupt));
                foreach (var column in result.Columns)
                {
                    var mean = column.MeanScores();
                    string scores = mean is null ? "" : string.Create(CultureInfo.InvariantCulture, $", BLEU-4 {mean["bleu-4"]:0.00}, ROUGE-L {mean["rouge-l"]:0.00}");
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{column.Name}: {column.Answers.Average(a => a.Tokens):0.0} tokens per answer{scores}"));
                }
                return 0;
            }, "no report written");
        }));
        return command;
    }
}
