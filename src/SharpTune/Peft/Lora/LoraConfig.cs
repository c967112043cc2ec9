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
    /// <summary>DoRA: each wrapped Linear also has a magnitude vector (see <see cref="DoraLayer"/>).</summary>
    public bool UseDora { get; init; }
    /// <summary>
    /// init_lora_weights when it names an initialisation taken from the base weight ("pissa", "pissa_niter_N",
    /// "olora": see <see cref="MutatedInitLayer"/>); null for PEFT's default (true) and the other initialisations,
    /// which a saved adapter's weights make irrelevant.
    /// </summary>
    public string? InitLoraWeights { get; init; }
    /// <summary>Module names (the last part of a Linear's path, e.g. q_proj) that carry LoRA weights.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = [];
    /// <summary>Modules trained in full and saved next to the adapter (PEFT's modules_to_save).</summary>
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];
    public string BaseModelNameOrPath { get; init; } = "";

    /// <summary>The factor on B·A: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <exception cref="InvalidDataException">The file is not valid UTF-8 or JSON, or a field is of the wrong type, out of range or unsupported: "PATH: 'field' problem".</exception>
    public static LoraConfig Load(string adapterDirectory) => PeftConfigFile.Read(adapterDirectory, (json, path, reader) =>
        {
            string peftType = reader.OptionalString("peft_type") ?? "";
            if (peftType != "LORA") throw new InvalidDataException($"{path}: peft_type is {MessageText.Quote(peftType)}; only LORA adapters are supported");
            if (reader.OptionalBool("fan_in_fan_out") == true) throw new InvalidDataException($"{path}: fan_in_fan_out adapters (Conv1D models) are not supported");
            if (IsNonEmptyObject(json, "rank_pattern") || IsNonEmptyObject(json, "alpha_pattern"))
                throw new InvalidDataException($"{path}: per-module rank_pattern/alpha_pattern is not supported");
            if (json.TryGetProperty("layers_to_transform", out var layers) && layers.ValueKind != JsonValueKind.Null)
                throw new InvalidDataException($"{path}: layers_to_transform is not supported");
            return new LoraConfig
            {
                Rank = reader.RequiredInt("r", min: 1),
                Alpha = reader.OptionalDouble("lora_alpha") ?? 8,
                Dropout = reader.OptionalDouble("lora_dropout", min: 0) ?? 0,
                UseRslora = reader.OptionalBool("use_rslora") ?? false,
                UseDora = reader.OptionalBool("use_dora") ?? false,
                InitLoraWeights = ReadInit(json, path),
                TargetModules = PeftConfigFile.ReadNames(json, path, "target_modules"),
                ModulesToSave = PeftConfigFile.ReadNames(json, path, "modules_to_save"),
                BaseModelNameOrPath = reader.OptionalString("base_model_name_or_path") ?? "",
            };
        });

    /// <summary>init_lora_weights: true/false or a name; the base-changing names SharpTune computes, the others refused or irrelevant.</summary>
    private static string? ReadInit(JsonElement json, string path)
    {
        if (!json.TryGetProperty("init_lora_weights", out var init) || init.ValueKind is JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null) return null;
        if (init.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{path}: 'init_lora_weights' holds {JsonKinds.Describe(init)}, not true, false or a name");
        string name = init.GetString()!;
        if (LoraInitialization.MutatesBase(name)) return name;
        if (name.StartsWith("loftq", StringComparison.Ordinal) || name.StartsWith("corda", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: init_lora_weights {MessageText.Quote(name)} changes the base weights in a way SharpTune does not compute; convert the adapter to a plain LoRA in PEFT (save_pretrained with path_initial_model_for_weight_conversion)");
        return null;
    }

    private static bool IsNonEmptyObject(JsonElement json, string field) =>
        json.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Object && value.EnumerateObject().Any();

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
            ["init_lora_weights"] = InitLoraWeights is null ? JsonValue.Create(true) : JsonValue.Create(InitLoraWeights),
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = Alpha == Math.Floor(Alpha) ? JsonValue.Create((long)Alpha) : JsonValue.Create(Alpha),
            ["lora_dropout"] = Dropout,
            ["megatron_config"] = null,
            ["megatron_core"] = "megatron.core",
            ["modules_to_save"] = PeftConfigFile.Names(ModulesToSave),
            ["peft_type"] = "LORA",
            ["r"] = Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(TargetModules.Select(m => (JsonNode?)m).ToArray()),
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = UseDora,
            ["use_rslora"] = UseRslora,
        };
        PeftConfigFile.Write(adapterDirectory, json);
    }
}
