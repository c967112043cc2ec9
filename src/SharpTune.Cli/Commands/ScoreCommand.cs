using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Evaluation.Scoring;
using SharpTune.Hub;
using SharpTune.IO;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune score`: a reward model's score of each prompt/response record of a file — the base model with the
/// reward model's adapter applied unmerged and its value head at the last token of prompt + response.
/// </summary>
public static class ScoreCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model folder (the reward model's base, or a fully trained reward model)", Required = true };
        var adapter = new Option<string[]>("--adapter") { Description = "Adapter folder of the reward model, applied unmerged; repeat to stack adapters in order" };
        var valueHead = new Option<string?>("--value-head") { Description = "value_head.safetensors (default: the one in the last --adapter folder, else in --model)" };
        var input = new Option<string>("--input") { Description = "Records with a response: alpaca (instruction/input/output), sharegpt (conversations) or OpenAI messages, JSON or JSON Lines", Required = true };
        var template = new Option<string>("--template") { Description = "Chat template name, or 'auto' to read it from tokenizer_config.json", DefaultValueFactory = _ => "auto" };
        var cutoff = new Option<int>("--cutoff-len") { Description = "Tokens of prompt + response kept, cut as training cuts them (LLaMA-Factory's cutoff_len)", DefaultValueFactory = _ => 2048 };
        var batchSize = new Option<int>("--batch-size") { Description = "Records per forward pass", DefaultValueFactory = _ => 8 };
        var output = new Option<string?>("--out") { Description = "Write the JSON Lines here (atomically) instead of to stdout" };
        var command = new Command("score", "Score prompt/response records with a reward model (adapter + value head); one {\"score\", \"tokens\"} JSON line per record, in input order")
        {
            model, adapter, valueHead, input, template, cutoff, batchSize, output,
        };
        command.SetAction(r => CliAction.Run(() =>
        {
            string modelDir = HubDownload.FolderFor(r.GetValue(model)!);
            string[] adapters = (r.GetValue(adapter) ?? []).Select(HubDownload.FolderFor).ToArray();
            string headFile = r.GetValue(valueHead) ?? Path.Combine(adapters.Length > 0 ? adapters[^1] : modelDir, ValueHead.FileName);
            if (r.GetValue(cutoff) <= 0) throw new ArgumentException($"--cutoff-len must be positive, got {r.GetValue(cutoff)}");
            ModelFolder.ValidateTokenizer(modelDir);
            var tokenizer = Tokenizer.FromDirectory(modelDir);
            var chatTemplate = ChatTemplates.ForModel(r.GetValue(template), modelDir, tokenizer);
            var responses = ResponseScoring.Read(r.GetValue(input)!, tokenizer, chatTemplate, r.GetValue(cutoff));
            using var decoder = DecoderModel.LoadForGeneration(modelDir, adapterDirectories: adapters);
            CliAction.ReportBackend(decoder.Backend);
            var head = ValueHead.Load(headFile, decoder.Config.HiddenSize);
            var scores = head.ScoreSequences(decoder, responses.Select(x => x.InputIds).ToList(), r.GetValue(batchSize));

            var lines = new StringBuilder();
            for (int i = 0; i < scores.Length; i++)
                lines.Append(JsonSerializer.Serialize(new { score = scores[i], tokens = responses[i].InputIds.Length })).Append('\n');
            if (r.GetValue(output) is { } outputPath) AtomicFile.WriteText(outputPath, lines.ToString());
            else Console.Out.Write(lines.ToString());
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[sharptune] scored {scores.Length} records with {headFile}: mean {scores.Average():0.0000}, min {scores.Min():0.0000}, max {scores.Max():0.0000}"));
            return 0;
        }));
        return command;
    }
}
