using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft.Ia3;

/// <summary>
/// An IA3 adapter's configuration as PEFT's IA3Config stores it in adapter_config.json (peft_type IA3): which Linears
/// carry an ia3_l vector (target_modules) and which of them scale their input rather than their output
/// (feedforward_modules, a subset of target_modules).
/// </summary>
public sealed class Ia3Config
{
    public const string PeftType = "IA3";

    /// <summary>Module names (the last part of a Linear's path, e.g. v_proj) that carry an ia3_l vector.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = [];
    /// <summary>The targets whose input is scaled ([1, in]); the others scale their output, bias included ([out, 1]).</summary>
    public IReadOnlyList<string> FeedforwardModules { get; init; } = [];
    public string BaseModelNameOrPath { get; init; } = "";

    /// <summary>Whether the Linear at <paramref name="modulePath"/> is a feed-forward target (PEFT matches by the path's end).</summary>
    public bool IsFeedforward(string modulePath) => FeedforwardModules.Any(m => PeftConfigFile.ModuleMatches(modulePath, m));

    /// <exception cref="InvalidDataException">The file is unreadable, not IA3, or uses a field SharpTune does not implement: "PATH: 'field' problem".</exception>
    public static Ia3Config Load(string adapterDirectory) => PeftConfigFile.Read(adapterDirectory, (json, path, reader) =>
    {
        string peftType = reader.OptionalString("peft_type") ?? "";
        if (peftType != PeftType) throw new InvalidDataException($"{path}: peft_type is {MessageText.Quote(peftType)}, not {PeftType}");
        if (reader.OptionalBool("fan_in_fan_out") == true) throw new InvalidDataException($"{path}: 'fan_in_fan_out' adapters (Conv1D models) are not supported");
        if (PeftConfigFile.ReadNames(json, path, "modules_to_save").Length > 0)
            throw new InvalidDataException($"{path}: 'modules_to_save' is not supported with IA3 adapters");
        var targets = PeftConfigFile.ReadNames(json, path, "target_modules");
        var feedforward = PeftConfigFile.ReadNames(json, path, "feedforward_modules");
        if (targets.Length == 0) throw new InvalidDataException($"{path}: 'target_modules' names no module");
        foreach (string f in feedforward)
            if (!targets.Contains(f))
                throw new InvalidDataException($"{path}: 'feedforward_modules' entry '{f}' is not in target_modules; PEFT requires feedforward_modules to be a subset of target_modules");
        return new Ia3Config
        {
            TargetModules = targets,
            FeedforwardModules = feedforward,
            BaseModelNameOrPath = reader.OptionalString("base_model_name_or_path") ?? "",
        };
    });

    /// <summary>Writes adapter_config.json with the fields of PEFT's IA3Config, sorted as PEFT writes them.</summary>
    public void Save(string adapterDirectory) => PeftConfigFile.Write(adapterDirectory, new JsonObject
    {
        ["auto_mapping"] = null,
        ["base_model_name_or_path"] = BaseModelNameOrPath,
        ["fan_in_fan_out"] = false,
        ["feedforward_modules"] = new JsonArray(FeedforwardModules.Select(m => (JsonNode?)m).ToArray()),
        ["inference_mode"] = true,
        ["init_ia3_weights"] = true,
        ["modules_to_save"] = null,
        ["peft_type"] = PeftType,
        ["revision"] = null,
        ["target_modules"] = new JsonArray(TargetModules.Select(m => (JsonNode?)m).ToArray()),
        ["task_type"] = "CAUSAL_LM",
    });
}
