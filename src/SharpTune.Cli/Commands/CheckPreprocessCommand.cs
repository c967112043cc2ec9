using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check preprocess`: LLaMA-Factory's supervised preprocessing of single records, for comparison with its
/// own output. Reads a JSON array of cases <c>{record, dataset_info, settings}</c> on stdin and writes a JSON array of
/// <c>{input_ids, attention_mask, labels}</c>.
/// </summary>
public static class CheckPreprocessCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with tokenizer.json and tokenizer_config.json", Required = true };
        var command = new Command("preprocess",
            "Preprocess records as supervised fine-tuning does: JSON array of {record, dataset_info, settings} on stdin; JSON array of {input_ids, attention_mask, labels} on stdout")
        {
            tokenizer,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            string dir = r.GetValue(tokenizer)!;
            var t = Tokenizer.FromDirectory(dir);
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(Console.In.ReadToEnd());
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"stdin: not valid JSON ({e.Message})");
            }
            if (root is not JsonArray cases)
                throw new InvalidDataException("stdin: expected a JSON array of cases {record, dataset_info, settings}");

            var results = new JsonArray();
            for (int i = 0; i < cases.Count; i++)
            {
                try
                {
                    var example = Preprocess(cases[i], t, dir);
                    results.Add(new JsonObject
                    {
                        ["input_ids"] = Ints(example.InputIds),
                        ["attention_mask"] = Ints(example.AttentionMask),
                        ["labels"] = Ints(example.Labels),
                    });
                }
                catch (Exception e) when (e is InvalidRecordException or InvalidDataException or ArgumentException or KeyNotFoundException or FormatException or InvalidOperationException)
                {
                    throw new InvalidDataException($"case {i}: {e.Message}", e);
                }
            }
            Console.Out.WriteLine(results.ToJsonString());
            return 0;
        }));
        return command;
    }

    private static SupervisedExample Preprocess(JsonNode? node, Tokenizer tokenizer, string tokenizerDir)
    {
        if (node is not JsonObject c)
            throw new InvalidDataException("a case must be an object {record, dataset_info, settings}");
        var settings = c["settings"] as JsonObject ?? new JsonObject();
        var args = new DataArguments
        {
            Template = String(settings, "template"),
            CutoffLen = settings["cutoff_len"] is { } cutoff ? cutoff.GetValue<int>() : new DataArguments().CutoffLen,
            TrainOnPrompt = settings["train_on_prompt"]?.GetValue<bool>() ?? false,
            MaskHistory = settings["mask_history"]?.GetValue<bool>() ?? false,
            DefaultSystem = String(settings, "default_system"),
            ToolFormat = String(settings, "tool_format"),
        };
        var processor = SupervisedProcessor.ForData(tokenizer, ChatTemplates.ForModel(args.Template, tokenizerDir), args);

        using var info = JsonDocument.Parse(c["dataset_info"]?.ToJsonString() ?? "{}");
        var entry = DatasetEntry.Parse("case", info.RootElement, "dataset_info");
        using var record = JsonDocument.Parse(c["record"]?.ToJsonString() ?? "null");
        return processor.Encode(DatasetConverter.Convert(entry, record.RootElement));
    }

    private static string? String(JsonObject settings, string key) => settings[key]?.GetValue<string>();

    private static JsonArray Ints(int[] values) => new(values.Select(v => (JsonNode)v).ToArray());
}
