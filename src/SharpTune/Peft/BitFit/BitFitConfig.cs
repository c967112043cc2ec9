using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft.BitFit;

/// <summary>
/// adapter_config.json of a BitFit folder. PEFT has no BitFit, so the folder is SharpTune's own (peft_type BITFIT):
/// adapter_model.safetensors holds the trained base tensors under their Hugging Face names (every bias, plus the
/// norm weights bitfit_extra_modules named), what PEFT's modules_to_save would hold; Python loads it onto the base
/// with <c>model.load_state_dict(safetensors.torch.load_file(path), strict=False)</c>.
/// </summary>
public sealed class BitFitConfig
{
    public const string PeftType = "BITFIT";

    /// <summary>Modules besides the biases whose weights were trained (norms: input_layernorm, norm, …).</summary>
    public IReadOnlyList<string> ExtraModules { get; init; } = [];
    public string BaseModelNameOrPath { get; init; } = "";

    /// <exception cref="InvalidDataException">The file is unreadable or not BITFIT: "PATH: 'field' problem".</exception>
    public static BitFitConfig Load(string adapterDirectory) => PeftConfigFile.Read(adapterDirectory, (json, path, reader) =>
    {
        string peftType = reader.OptionalString("peft_type") ?? "";
        if (peftType != PeftType) throw new InvalidDataException($"{path}: peft_type is {MessageText.Quote(peftType)}, not {PeftType}");
        return new BitFitConfig
        {
            ExtraModules = PeftConfigFile.ReadNames(json, path, "bitfit_extra_modules"),
            BaseModelNameOrPath = reader.OptionalString("base_model_name_or_path") ?? "",
        };
    });

    /// <summary>Writes adapter_config.json (sorted fields, as PEFT writes its own).</summary>
    public void Save(string adapterDirectory) => PeftConfigFile.Write(adapterDirectory, new JsonObject
    {
        ["base_model_name_or_path"] = BaseModelNameOrPath,
        ["bitfit_extra_modules"] = new JsonArray(ExtraModules.Select(m => (JsonNode?)m).ToArray()),
        ["peft_type"] = PeftType,
        ["task_type"] = "CAUSAL_LM",
    });
}
