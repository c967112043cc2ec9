using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Engine;
using SharpTune.Inference;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Cli.Commands;

/// <summary>
/// `sharptune check ...`: the numerical conformance interface. Each command reads plain JSON and writes results
/// in a fixed format, so a build can be compared with Hugging Face's outputs on any model folder.
/// </summary>
public static class CheckCommands
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create() => new("check", "Conformance checks against reference implementations")
    {
        Forward(), Generate(), Tokenize(), Template(),
        CheckGradCommand.Create(), CheckMergeCommand.Create(), CheckPreprocessCommand.Create(), CheckPrefCommand.Create(),
    };

    private static Command Forward()
    {
        var model = new Option<string>("--model") { Description = "Model folder", Required = true };
        var input = new Option<string>("--input") { Description = "JSON file {\"input_ids\": [[...]], \"attention_mask\": [[...]]}", Required = true };
        var output = new Option<string>("--out") { Description = "Output safetensors: float32 last_hidden_state [B,T,H] and logits [B,T,V]", Required = true };
        var command = new Command("forward", "Run a forward pass and write the last hidden state and logits") { model, input, output };
        command.SetAction(r => CliAction.Run(() =>
        {
            var (ids, mask) = ReadBatch(r.GetValue(input)!);
            using var m = DecoderModel.LoadForGeneration(r.GetValue(model)!);
            CliAction.ReportBackend(m.Backend);
            var (hidden, logits) = m.Evaluate(ids, mask);
            long batch = ids.Length, time = ids[0].Length;
            SafetensorsWriter.Write(r.GetValue(output)!,
            [
                ("last_hidden_state", DType.F32, [batch, time, m.Config.HiddenSize], FloatBytes(hidden)),
                ("logits", DType.F32, [batch, time, m.Config.VocabSize], FloatBytes(logits)),
            ]);
            return 0;
        }));
        return command;
    }

    private static Command Generate()
    {
        var model = new Option<string>("--model") { Description = "Model folder", Required = true };
        var input = new Option<string>("--input") { Description = "JSON file {\"input_ids\": [[...]], \"attention_mask\": [[...]]}; the first sequence is continued", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Number of tokens to generate", Required = true };
        var penalty = new Option<float>("--repetition-penalty") { Description = "Hugging Face repetition penalty", DefaultValueFactory = _ => 1f };
        var stopAtEos = new Option<bool>("--stop-at-eos") { Description = "Stop when an eos id (generation_config.json / config.json) is produced" };
        var command = new Command("generate", "Print the greedy continuation ids of the first sequence as a JSON array") { model, input, maxNew, penalty, stopAtEos };
        command.SetAction(r => CliAction.Run(() =>
        {
            var (ids, mask) = ReadBatch(r.GetValue(input)!);
            int[] prompt = ids[0].Where((_, i) => mask[0][i] == 1).ToArray();
            using var m = DecoderModel.LoadForGeneration(r.GetValue(model)!);
            CliAction.ReportBackend(m.Backend);
            var eos = GenerationOptions.FromModelFolder(m.Directory, m.Config).StopTokenIds;
            var options = new GenerationOptions
            {
                MaxNewTokens = r.GetValue(maxNew),
                RepetitionPenalty = r.GetValue(penalty),
                StopTokenIds = r.GetValue(stopAtEos) ? eos : new HashSet<int>(),
            };
            var result = new Generator(m).Generate(prompt, options);
            var produced = result.NewIds.ToList();
            // An eos that ended generation is part of Hugging Face's output sequence, so print it too.
            if (result.StopTokenId is int stop) produced.Add(stop);
            Console.WriteLine(JsonSerializer.Serialize(produced));
            return 0;
        }));
        return command;
    }

    private static Command Tokenize()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with tokenizer.json or tokenizer.model (SentencePiece or tiktoken)", Required = true };
        var command = new Command("tokenize", "Read JSON strings (one per line) on stdin; write {ids, decoded, decoded_skip_special_tokens} lines") { tokenizer };
        command.SetAction(r => CliAction.Run(() =>
        {
            var t = Tokenizer.FromDirectory(r.GetValue(tokenizer)!);
            int lineNumber = 0;
            while (Console.In.ReadLine() is { } line)
            {
                lineNumber++;
                if (line.Trim().Length == 0) continue;
                string text;
                try
                {
                    text = JsonSerializer.Deserialize<string>(line) ?? throw new JsonException("null");
                }
                catch (JsonException e)
                {
                    throw new InvalidDataException($"stdin line {lineNumber}: expected a JSON string ({e.Message})");
                }
                int[] ids = t.Encode(text);
                var result = new JsonObject
                {
                    ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                    ["decoded"] = t.Decode(ids),
                    ["decoded_skip_special_tokens"] = t.Decode(ids, skipSpecialTokens: true),
                };
                Console.Out.WriteLine(result.ToJsonString(Json));
            }
            return 0;
        }));
        return command;
    }

    private static Command Template()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with tokenizer.json and tokenizer_config.json", Required = true };
        var name = new Option<string?>("--template") { Description = "Template name (default: chosen from tokenizer_config.json)" };
        var command = new Command("template", "Render a JSON array of chat cases from stdin; write a JSON array of {rendered, ids}") { tokenizer, name };
        command.SetAction(r => CliAction.Run(() =>
        {
            string dir = r.GetValue(tokenizer)!;
            var t = Tokenizer.FromDirectory(dir);
            var template = ChatTemplates.ForModel(r.GetValue(name), dir);
            var cases = ChatTemplateCases.Parse(Console.In.ReadToEnd());
            var results = new JsonArray();
            foreach (var c in cases)
            {
                string rendered = template.Render(c.Messages, c.AddGenerationPrompt, c.ToolsJson, c.EnableThinking);
                results.Add(new JsonObject
                {
                    ["rendered"] = rendered,
                    ["ids"] = new JsonArray(template.Encode(t, rendered).Select(i => (JsonNode)i).ToArray()),
                });
            }
            Console.Out.WriteLine(results.ToJsonString(Json));
            return 0;
        }));
        return command;
    }

    private static (int[][] Ids, int[][] Mask) ReadBatch(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"input file '{path}' does not exist");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
        int[][] Matrix(string key, bool required)
        {
            var node = root?[key];
            if (node is null)
                return required ? throw new InvalidDataException($"{path}: '{key}' is missing") : [];
            try
            {
                return node.AsArray().Select(row => row!.AsArray().Select(v => v!.GetValue<int>()).ToArray()).ToArray();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new InvalidDataException($"{path}: '{key}' must be a list of lists of integers");
            }
        }
        var ids = Matrix("input_ids", true);
        if (ids.Length == 0 || ids[0].Length == 0) throw new InvalidDataException($"{path}: 'input_ids' is empty");
        var mask = Matrix("attention_mask", false);
        if (mask.Length == 0) mask = ids.Select(r => Enumerable.Repeat(1, r.Length).ToArray()).ToArray();
        // check generate reads the mask itself, before any model-side validation could name the problem.
        if (mask.Length != ids.Length || mask.Where((row, b) => row.Length != ids[b].Length).Any())
            throw new InvalidDataException($"{path}: 'attention_mask' must have the shape of 'input_ids'");
        return (ids, mask);
    }

    private static ReadOnlyMemory<byte> FloatBytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
