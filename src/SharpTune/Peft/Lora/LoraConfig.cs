using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft.Lora;

/// <summary>
/// A LoRA adapter's configuration as PEFT stores it in adapter_config.json. Only the fields SharpTune acts on are
/// typed; writing emits every field PEFT's LoraConfig has, so Python's PeftModel.from_pretrained accepts the file.
/// </summary>
public sealed class LoraConfig
{
    public const string FileName = "adapter_config.json";

    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 8;
    public double Dropout { get; init; }
    public bool UseRslora { get; init; }
    /// <summary>Module names (the last part of a Linear's path, e.g. q_proj) that carry LoRA weights.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = [];
    /// <summary>Modules trained in full and saved next to the adapter (PEFT's modules_to_save).</summary>
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];
    public string BaseModelNameOrPath { get; init; } = "";

    /// <summary>The factor on B·A: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    public static LoraConfig Load(string adapterDirectory)
    {
        string path = Path.Combine(adapterDirectory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{adapterDirectory}: {FileName} is missing; is this a PEFT adapter folder?", path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON ({e.Message})", e);
        }
        string peftType = (string?)json["peft_type"] ?? "";
        if (peftType != "LORA") throw new InvalidDataException($"{path}: peft_type is '{peftType}'; only LORA adapters are supported");
        if (json["use_dora"]?.GetValue<bool>() == true) throw new InvalidDataException($"{path}: DoRA adapters (use_dora: true) are not supported");
        if (json["fan_in_fan_out"]?.GetValue<bool>() == true) throw new InvalidDataException($"{path}: fan_in_fan_out adapters (Conv1D models) are not supported");
        if (json["rank_pattern"] is JsonObject rp && rp.Count > 0 || json["alpha_pattern"] is JsonObject ap && ap.Count > 0)
            throw new InvalidDataException($"{path}: per-module rank_pattern/alpha_pattern is not supported");
        if (json["layers_to_transform"] is JsonNode ltt && ltt.GetValueKind() != JsonValueKind.Null)
            throw new InvalidDataException($"{path}: layers_to_transform is not supported");
        int rank = json["r"]?.GetValue<int>() ?? throw new InvalidDataException($"{path}: 'r' is missing");
        return new LoraConfig
        {
            Rank = rank,
            Alpha = json["lora_alpha"]?.GetValue<double>() ?? 8,
            Dropout = json["lora_dropout"]?.GetValue<double>() ?? 0,
            UseRslora = json["use_rslora"]?.GetValue<bool>() ?? false,
            TargetModules = ReadNames(json["target_modules"], path, "target_modules"),
            ModulesToSave = ReadNames(json["modules_to_save"], path, "modules_to_save"),
            BaseModelNameOrPath = (string?)json["base_model_name_or_path"] ?? "",
        };
    }

    private static string[] ReadNames(JsonNode? node, string path, string field) => node switch
    {
        null => [],
        JsonArray a => a.Select(n => (string?)n ?? throw new InvalidDataException($"{path}: '{field}' holds a non-string")).ToArray(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String =>
            throw new InvalidDataException($"{path}: '{field}' is a regular expression; only a list of module names is supported"),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => [],
        _ => throw new InvalidDataException($"{path}: '{field}' must be a list of module names"),
    };

    /// <summary>Writes adapter_config.json with PEFT 0.11's fields and key order (sorted, as PEFT writes them).</summary>
    public void Save(string adapterDirectory)
    {
        var json = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = Alpha == Math.Floor(Alpha) ? JsonValue.Create((long)Alpha) : JsonValue.Create(Alpha),
            ["lora_dropout"] = Dropout,
            ["megatron_config"] = null,
            ["megatron_core"] = "megatron.core",
            ["modules_to_save"] = ModulesToSave.Count == 0 ? null : new JsonArray(ModulesToSave.Select(m => (JsonNode?)m).ToArray()),
            ["peft_type"] = "LORA",
            ["r"] = Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(TargetModules.Select(m => (JsonNode?)m).ToArray()),
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = UseRslora,
        };
        Directory.CreateDirectory(adapterDirectory);
        AtomicFile.WriteText(Path.Combine(adapterDirectory, FileName),
            json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }
}
