using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Export;

/// <summary>
/// The generation_config.json of an exported model used with a chat template, as LLaMA-Factory leaves it: the base's
/// settings, with eos_token_id = [the template's eos (its first stop word when it replaces the tokenizer's eos), the
/// other stop words, then the base's own eos ids], pad_token_id falling back to the eos, and do_sample switched on
/// when sampling settings are present (LLaMA-Factory's patch_model does this so transformers accepts them).
/// Written as transformers writes it: keys sorted, two-space indent, trailing newline.
/// </summary>
public static class ExportGenerationConfig
{
    public static string Build(string baseDir, ModelConfig config, ChatTemplate template)
    {
        var root = ReadBase(baseDir);
        var eos = new List<int>();
        if (template.Markers().Any())
        {
            ModelFolder.ValidateTokenizer(baseDir);
            var tokenizer = Tokenizer.FromDirectory(baseDir);
            ChatTemplates.RequireSingleTokens(template, tokenizer, baseDir);
            eos.AddRange(template.StopTokenIds(tokenizer));
        }
        eos.AddRange(Ids(root["eos_token_id"]));
        eos.AddRange(config.EosTokenIds);
        var distinct = eos.Distinct().ToArray();
        if (distinct.Length > 0)
            root["eos_token_id"] = distinct.Length == 1 ? JsonValue.Create(distinct[0]) : new JsonArray(distinct.Select(id => (JsonNode?)id).ToArray());
        if (root["pad_token_id"] is null && distinct.Length > 0) root["pad_token_id"] = distinct[0];
        if (root["do_sample"]?.GetValue<bool>() != true && (IsSet(root, "temperature") || IsSet(root, "top_p") || IsSet(root, "typical_p")))
            root["do_sample"] = true;

        var sorted = new JsonObject();
        foreach (var (key, value) in root.OrderBy(kv => kv.Key, StringComparer.Ordinal)) sorted[key] = value?.DeepClone();
        return sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>The base's generation_config.json, or (like GenerationConfig.from_model_config) config.json's token ids.</summary>
    private static JsonObject ReadBase(string baseDir)
    {
        string path = ModelFolder.GenerationConfigPath(baseDir);
        if (File.Exists(path)) return ParseObject(path);
        var config = ParseObject(ModelFolder.ConfigPath(baseDir));
        var root = new JsonObject();
        foreach (string key in new[] { "bos_token_id", "eos_token_id", "pad_token_id" })
            if (config[key] is { } value) root[key] = value.DeepClone();
        return root;
    }

    private static JsonObject ParseObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    private static IEnumerable<int> Ids(JsonNode? node) => node switch
    {
        null => [],
        JsonArray array => array.Select(n => n!.GetValue<int>()),
        _ => [node.GetValue<int>()],
    };

    /// <summary>A sampling setting present with a value other than its neutral 1.0.</summary>
    private static bool IsSet(JsonObject root, string key) => root[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.GetValue<double>() != 1.0;
}
