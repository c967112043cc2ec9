using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Hparams;

namespace SharpTune.Board.Train;

/// <summary>What a form field holds; the page renders an input for each and the server checks the value by it.</summary>
public enum FieldKind { Number, Integer, Boolean, Choice, Text }

/// <summary>
/// One setting of the Train tab, a config key with LlamaBoard's default (llamafactory/webui/components/train.py)
/// and the group it is shown in. <see cref="Stages"/>/<see cref="Methods"/> limit where it applies (null: always).
/// </summary>
public sealed record TrainField(string Key, FieldKind Kind, JsonNode Default, string Group, IReadOnlyList<string>? Choices = null,
    IReadOnlyList<string>? Stages = null, IReadOnlyList<string>? Methods = null)
{
    public bool AppliesTo(string stage, string method) =>
        (Stages is null || Stages.Contains(stage)) && (Methods is null || Methods.Contains(method));

    public JsonObject ToJson() => new()
    {
        ["key"] = Key,
        ["kind"] = Kind.ToString().ToLowerInvariant(),
        ["default"] = Default.DeepClone(),
        ["group"] = Group,
        ["choices"] = Choices is null ? null : TopBarEndpoints.Strings(Choices),
        ["stages"] = Stages is null ? null : TopBarEndpoints.Strings(Stages),
        ["methods"] = Methods is null ? null : TopBarEndpoints.Strings(Methods),
    };
}

/// <summary>
/// The Train tab's form: its fields, and the request it sends (top bar, stage, datasets, output folder, field
/// values) turned into the YAML config and the `sharptune train` line a run executes. The YAML is parsed back by
/// <see cref="SftConfig.Parse(string, IReadOnlyList{string}?, string?)"/> before it is shown or run, so a value
/// training would refuse is refused here, naming the key.
/// </summary>
public static class TrainForm
{
    /// <summary>The config file a run's output folder holds (LlamaBoard's name).</summary>
    public const string ConfigFileName = "training_args.yaml";

    private static readonly string[] PreferenceStages = ["dpo", "kto"];

    public static readonly IReadOnlyList<TrainField> Fields =
    [
        new("learning_rate", FieldKind.Number, 5e-5, "basic"),
        new("num_train_epochs", FieldKind.Number, 3.0, "basic"),
        new("max_grad_norm", FieldKind.Number, 1.0, "basic"),
        new("max_samples", FieldKind.Integer, 100000, "basic"),
        new("cutoff_len", FieldKind.Integer, 2048, "basic"),
        new("per_device_train_batch_size", FieldKind.Integer, 2, "basic"),
        new("gradient_accumulation_steps", FieldKind.Integer, 8, "basic"),
        new("val_size", FieldKind.Number, 0.0, "basic"),
        new("lr_scheduler_type", FieldKind.Choice, "cosine", "basic", TrainingArguments.SupportedSchedulers),
        new("logging_steps", FieldKind.Integer, 5, "extra"),
        new("save_steps", FieldKind.Integer, 100, "extra"),
        new("warmup_steps", FieldKind.Integer, 0, "extra"),
        new("max_steps", FieldKind.Integer, -1, "extra"),
        new("optim", FieldKind.Choice, "adamw_torch", "extra", TrainingArguments.SupportedOptimizers),
        new("packing", FieldKind.Boolean, false, "extra"),
        new("train_on_prompt", FieldKind.Boolean, false, "extra"),
        new("mask_history", FieldKind.Boolean, false, "extra"),
        new("bf16", FieldKind.Boolean, false, "extra"),
        new("gradient_checkpointing", FieldKind.Boolean, false, "extra"),
        new("lora_rank", FieldKind.Integer, 8, "method", Methods: ["lora"]),
        new("lora_alpha", FieldKind.Integer, 16, "method", Methods: ["lora"]),
        new("lora_dropout", FieldKind.Number, 0.0, "method", Methods: ["lora"]),
        new("lora_target", FieldKind.Text, "all", "method", Methods: ["lora"]),
        new("use_rslora", FieldKind.Boolean, false, "method", Methods: ["lora"]),
        new("use_dora", FieldKind.Boolean, false, "method", Methods: ["lora"]),
        new("freeze_trainable_layers", FieldKind.Integer, 2, "method", Methods: ["freeze"]),
        new("freeze_trainable_modules", FieldKind.Text, "all", "method", Methods: ["freeze"]),
        new("pref_beta", FieldKind.Number, 0.1, "preference", Stages: PreferenceStages),
        new("pref_ftx", FieldKind.Number, 0.0, "preference", Stages: PreferenceStages),
        new("pref_loss", FieldKind.Choice, "sigmoid", "preference", FinetuningArguments.PrefLosses, Stages: ["dpo"]),
    ];

    /// <summary>A run's config, the folder it writes and the command that runs it.</summary>
    public sealed record TrainPlan(string Yaml, string OutputDir, string CommandLine, string ModelKey);

    /// <summary>The default output folder of a new run: saves/MODEL/TYPE/train_TIMESTAMP, as LlamaBoard names it.</summary>
    public static string DefaultOutputDir(string modelKey, string finetuningType, DateTime now) =>
        Path.Combine("saves", modelKey, finetuningType, "train_" + now.ToString("yyyy-MM-dd-HH-mm-ss", CultureInfo.InvariantCulture));

    /// <summary>Reads the page's request into a checked plan; any bad field is a 400 naming it.</summary>
    public static TrainPlan Plan(BoardRoots roots, JsonObject body)
    {
        var model = TopBarEndpoints.ResolveModel(roots, BoardJson.RequiredString(body, "model"));
        string method = BoardJson.RequiredString(body, "finetuning_type");
        if (!FinetuningArguments.FinetuningTypeNames.Contains(method)) throw BoardException.BadRequest($"field 'finetuning_type': {BoardException.Quote(method)} is not a finetuning type");
        string stage = BoardJson.RequiredString(body, "stage");
        string template = BoardJson.OptionalString(body, "template") ?? "auto";
        string datasetDir = roots.Confine(BoardJson.RequiredString(body, "dataset_dir"), BoardRoot.Data);
        var datasets = StringList(body, "datasets");
        if (datasets.Count == 0) throw BoardException.BadRequest("field 'datasets': choose at least one dataset");
        var adapters = StringList(body, "adapters").Select(a => roots.Confine(a, BoardRoot.Saves)).ToList();
        string outputDir = roots.Confine(BoardJson.OptionalString(body, "output_dir") is { Length: > 0 } given
            ? given
            : DefaultOutputDir(model.Key, method, DateTime.Now), BoardRoot.Saves);
        var values = body["fields"] as JsonObject ?? new JsonObject();

        var yaml = new StringBuilder();
        yaml.AppendLine("### model");
        Line(yaml, "model_name_or_path", model.Folder);
        if (adapters.Count > 0) Line(yaml, "adapter_name_or_path", string.Join(",", adapters));
        Line(yaml, "template", template);
        if (body["quantization_bit"] is JsonValue bit && bit.TryGetValue(out int bits))
        {
            Line(yaml, "quantization_bit", bits);
            Line(yaml, "quantization_type", BoardJson.OptionalString(body, "quantization_type") ?? "nf4");
        }
        yaml.AppendLine().AppendLine("### method");
        Line(yaml, "stage", stage);
        Line(yaml, "do_train", true);
        Line(yaml, "finetuning_type", method);
        yaml.AppendLine().AppendLine("### dataset");
        Line(yaml, "dataset_dir", datasetDir);
        Line(yaml, "dataset", string.Join(",", datasets));
        yaml.AppendLine().AppendLine("### output");
        Line(yaml, "output_dir", outputDir);
        Line(yaml, "plot_loss", true);
        Line(yaml, "overwrite_output_dir", true);
        yaml.AppendLine().AppendLine("### settings");
        foreach (var field in Fields.Where(f => f.AppliesTo(stage, method)))
            Line(yaml, field.Key, Value(field, values[field.Key]));
        if (values.Select(p => p.Key).FirstOrDefault(k => !Fields.Any(f => f.Key == k)) is { } unknown)
            throw BoardException.BadRequest($"field {BoardException.Quote(unknown)} is not a setting of the Train tab");

        string text = yaml.ToString();
        try
        {
            SftConfig.Parse(text, [], roots.Root);
        }
        catch (Exception e) when (e is ConfigException or ArgumentException or InvalidDataException)
        {
            throw BoardException.BadRequest(e.Message);
        }
        string configPath = Path.Combine(roots.Display(outputDir), ConfigFileName);
        return new TrainPlan(text, outputDir, $"sharptune train {configPath}", model.Key);
    }

    /// <summary>A saved config's keys and values (strings, numbers, booleans as YAML gives them), for the form to load.</summary>
    public static JsonObject ReadYaml(string path)
    {
        var result = new JsonObject();
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw BoardException.BadRequest($"{path}: not valid YAML at line {e.Start.Line}: {e.Message}");
        }
        if (stream.Documents.Count == 0) return result;
        if (stream.Documents[0].RootNode is not YamlDotNet.RepresentationModel.YamlMappingNode mapping)
            throw BoardException.BadRequest($"{path}: a config is a mapping of keys to values");
        foreach (var (key, value) in mapping.Children)
        {
            string name = ((YamlDotNet.RepresentationModel.YamlScalarNode)key).Value ?? "";
            if (value is not YamlDotNet.RepresentationModel.YamlScalarNode { Value: { } text })
                throw BoardException.BadRequest($"{path}: key {BoardException.Quote(name)}: the form holds single values only");
            result[name] = text;
        }
        return result;
    }

    private static IReadOnlyList<string> StringList(JsonObject body, string field) => body[field] switch
    {
        null => [],
        JsonArray array => array.Select((item, i) => item is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0
            ? s : throw BoardException.BadRequest($"field '{field}' item {i}: must be a non-empty string")).ToList(),
        _ => throw BoardException.BadRequest($"field '{field}' must be a list of strings"),
    };

    // The value the page sent for a field (a string from an input, or a JSON number/boolean), checked by its kind.
    private static object Value(TrainField field, JsonNode? sent)
    {
        sent ??= field.Default;
        string text = sent.GetValueKind() switch
        {
            JsonValueKind.String => sent.GetValue<string>().Trim(),
            JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => sent.ToJsonString(),
            var kind => throw BoardException.BadRequest($"field '{field.Key}': expected a value, got {kind.ToString().ToLowerInvariant()}"),
        };
        switch (field.Kind)
        {
            case FieldKind.Number when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d):
                return d;
            case FieldKind.Integer when long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n):
                return n;
            case FieldKind.Boolean when bool.TryParse(text, out bool b):
                return b;
            case FieldKind.Choice when field.Choices!.Contains(text):
                return text;
            case FieldKind.Text when text.Length > 0 && !text.Contains('\n'):
                return text;
        }
        string expected = field.Kind switch
        {
            FieldKind.Number => "a number",
            FieldKind.Integer => "a whole number",
            FieldKind.Boolean => "true or false",
            FieldKind.Choice => "one of " + string.Join(", ", field.Choices!),
            _ => "one line of text",
        };
        throw BoardException.BadRequest($"field '{field.Key}': expected {expected}, got {BoardException.Quote(text)}");
    }

    internal static void Line(StringBuilder yaml, string key, object value) =>
        yaml.Append(key).Append(": ").AppendLine(value switch
        {
            bool b => b ? "true" : "false",
            string s => JsonSerializer.Serialize(s, BoardJson.Options),
            double d => d.ToString("R", CultureInfo.InvariantCulture) is var r && r.IndexOfAny(['.', 'E', 'e']) < 0 ? r + ".0" : r,
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => throw new ArgumentException($"{key}: no YAML form for a {value.GetType().Name}"),
        });
}
