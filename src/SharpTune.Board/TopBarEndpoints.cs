using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Hparams;
using SharpTune.Hub;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Workflows;

namespace SharpTune.Board;

/// <summary>
/// The top bar every tab shares: the choices (finetuning types, stages, templates, quantization) as the CLI accepts
/// them, the models under models/ and in the hub cache, the earlier runs of a model, and the template check.
/// </summary>
public static class TopBarEndpoints
{
    public static readonly IReadOnlyList<int> QuantizationBits = [4, 8];
    public static readonly IReadOnlyList<string> QuantizationTypes = ["nf4", "fp4"];

    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        api.MapGet("/options", () => BoardJson.Reply(new JsonObject
        {
            ["finetuning_types"] = Strings(FinetuningArguments.FinetuningTypeNames),
            ["stages"] = Strings(TrainingWorkflow.Stages.Keys),
            ["templates"] = Strings(ChatTemplates.Names),
            ["quantization_bits"] = new JsonArray(QuantizationBits.Select(b => (JsonNode)b).ToArray()),
            ["quantization_types"] = Strings(QuantizationTypes),
        }));
        api.MapGet("/models", () => BoardJson.Reply(new JsonObject { ["models"] = Strings(ListModels(board.Roots)) }));
        api.MapGet("/adapters", (HttpContext ctx) =>
        {
            var model = ResolveModel(board.Roots, BoardJson.Query(ctx, "model"));
            string type = BoardJson.Query(ctx, "finetuning_type");
            return BoardJson.Reply(new JsonObject { ["adapters"] = Strings(EarlierRuns(board.Roots, model, type)) });
        });
        api.MapGet("/template-check", (HttpContext ctx) =>
        {
            var model = ResolveModel(board.Roots, BoardJson.Query(ctx, "model"));
            string name = BoardJson.Query(ctx, "template");
            var (template, warning) = CheckTemplate(model.Folder, name);
            return BoardJson.Reply(new JsonObject { ["template"] = template, ["warning"] = warning });
        });
    }

    /// <summary>A model the page names, resolved and confined.</summary>
    /// <param name="Folder">Its real folder (under models/, saves/ or the hub cache).</param>
    /// <param name="Key">The name its runs are saved under: saves/KEY/TYPE/.</param>
    public sealed record BoardModel(string Folder, string Key);

    /// <summary>A cached hub id (ORG/NAME) or a folder (relative to the board's root, or absolute) inside models/, saves/ or the hub cache.</summary>
    public static BoardModel ResolveModel(BoardRoots roots, string model)
    {
        string folder = HubCache.IsRepoId(model) && !Directory.Exists(Path.Combine(roots.Root, model))
            && HubCache.FindSnapshot(model, "main", roots[BoardRoot.HubCache]) is { } snapshot
            ? roots.Confine(snapshot, BoardRoot.HubCache)
            : roots.Confine(model, BoardRoot.Models, BoardRoot.Saves, BoardRoot.HubCache);
        if (!File.Exists(Path.Combine(folder, "config.json")))
            throw BoardException.BadRequest($"model {BoardException.Quote(model)}: {roots.Display(folder)} has no config.json (not a model folder, or not downloaded)");
        string key = HubCache.IsRepoId(model) && model.Contains('/') && !Directory.Exists(Path.Combine(roots.Root, model))
            ? model[(model.IndexOf('/') + 1)..]
            : Path.GetFileName(folder);
        return new BoardModel(folder, key);
    }

    /// <summary>Folders under models/ holding a config.json (one or two levels deep, as ORG/NAME), then the hub cache's model ids.</summary>
    public static IReadOnlyList<string> ListModels(BoardRoots roots)
    {
        var models = new List<string>();
        string modelsDir = roots[BoardRoot.Models];
        if (Directory.Exists(modelsDir))
            foreach (string dir in Directory.EnumerateDirectories(modelsDir).Order(StringComparer.Ordinal))
            {
                if (File.Exists(Path.Combine(dir, "config.json"))) models.Add(roots.Display(dir));
                else models.AddRange(Directory.EnumerateDirectories(dir).Where(d => File.Exists(Path.Combine(d, "config.json"))).Order(StringComparer.Ordinal).Select(roots.Display));
            }
        string hub = roots[BoardRoot.HubCache];
        if (Directory.Exists(hub))
            foreach (string dir in Directory.EnumerateDirectories(hub, "models--*").Order(StringComparer.Ordinal))
            {
                string id = Path.GetFileName(dir)["models--".Length..].Replace("--", "/", StringComparison.Ordinal);
                if (HubCache.FindSnapshot(id, "main", hub) is { } snapshot && File.Exists(Path.Combine(snapshot, "config.json"))) models.Add(id);
            }
        return models;
    }

    /// <summary>Earlier runs of a model with this method (saves/KEY/TYPE/*) and their checkpoints, newest first.</summary>
    public static IReadOnlyList<string> EarlierRuns(BoardRoots roots, BoardModel model, string finetuningType)
    {
        string dir = Path.Combine(roots[BoardRoot.Saves], model.Key, finetuningType);
        if (!Directory.Exists(dir)) return [];
        var found = new List<string>();
        foreach (string run in Directory.EnumerateDirectories(dir).OrderDescending(StringComparer.Ordinal))
        {
            if (File.Exists(Path.Combine(run, "adapter_config.json")) || File.Exists(Path.Combine(run, "config.json"))) found.Add(roots.Display(run));
            found.AddRange(Directory.EnumerateDirectories(run, "checkpoint-*").OrderDescending(StringComparer.Ordinal).Select(roots.Display));
        }
        return found;
    }

    /// <summary>
    /// The template a run would use, or a warning: the checks train does (<see cref="ChatTemplates.ForModel(string?, string, Tokenizer)"/>),
    /// and a chosen template that is not the family tokenizer_config.json's chat_template belongs to.
    /// </summary>
    public static (string? Template, string? Warning) CheckTemplate(string modelDir, string name)
    {
        try
        {
            var template = ChatTemplates.ForModel(name, modelDir, Tokenizer.FromDirectory(modelDir));
            if (name != "auto")
            {
                string? detected = null;
                try { detected = ChatTemplates.FromModelDirectory(modelDir).Name; }
                catch (Exception e) when (e is FileNotFoundException or InvalidDataException) { }
                if (detected is not null && detected != template.Name)
                    return (template.Name, $"tokenizer_config.json's chat_template is the {detected} template's, not {template.Name}'s: the model was trained on {detected} (template: auto picks it)");
            }
            return (template.Name, null);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or KeyNotFoundException or ArgumentException)
        {
            return (null, e.Message);
        }
    }

    internal static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode)v).ToArray());
}
