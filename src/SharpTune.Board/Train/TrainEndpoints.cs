using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Board.Runs;
using SharpTune.Data;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Workflows;

namespace SharpTune.Board.Train;

/// <summary>
/// The Train tab: dataset folders and their datasets (with what is wrong when dataset_info.json is missing or
/// malformed), the tokenized preview, the form's fields, the YAML and command a run would execute, saving and
/// loading that YAML, and the runs: start (queued), list, abort, their files and their live event stream.
/// </summary>
public static class TrainEndpoints
{
    private const int MaxPreviewPage = 50;

    /// <summary>The files of a run folder the page may fetch.</summary>
    private static readonly HashSet<string> RunFiles = new(StringComparer.Ordinal)
        { "training_loss.png", "training_loss.svg", TrainForm.ConfigFileName, RunRecord.LogFileName, "trainer_log.jsonl", "all_results.json" };

    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        var roots = board.Roots;
        api.MapGet("/train/fields", () => BoardJson.Reply(new JsonObject
        {
            ["fields"] = new JsonArray(TrainForm.Fields.Select(f => (JsonNode)f.ToJson()).ToArray()),
            ["stages"] = TopBarEndpoints.Strings(TrainingWorkflow.Stages.Keys),
            ["preview_stages"] = TopBarEndpoints.Strings(DatasetPreview.Stages),
        }));
        api.MapGet("/dataset-dirs", () => BoardJson.Reply(new JsonObject { ["dirs"] = TopBarEndpoints.Strings(DatasetDirs(roots)) }));
        api.MapGet("/datasets", (HttpContext ctx) =>
        {
            var registry = LoadRegistry(roots, BoardJson.Query(ctx, "dir"));
            string stage = BoardJson.Query(ctx, "stage");
            var datasets = new JsonArray();
            foreach (string name in registry.Names)
            {
                string? problem = null;
                try
                {
                    registry.Get(name).RequireUsableBy(stage);
                }
                catch (InvalidDataException e)
                {
                    problem = e.Message;
                }
                datasets.Add(new JsonObject { ["name"] = name, ["usable"] = problem is null, ["problem"] = problem });
            }
            return BoardJson.Reply(new JsonObject { ["file"] = roots.Display(Path.Combine(registry.DatasetDir, DatasetRegistry.FileName)), ["datasets"] = datasets });
        });
        api.MapPost("/train/preview", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            return BoardJson.Reply(Preview(roots, body));
        });
        api.MapPost("/train/command", async (HttpContext ctx) =>
        {
            var plan = TrainForm.Plan(roots, await BoardJson.ReadObjectAsync(ctx));
            return BoardJson.Reply(new JsonObject { ["yaml"] = plan.Yaml, ["command"] = plan.CommandLine, ["output_dir"] = roots.Display(plan.OutputDir) });
        });
        api.MapPost("/train/save", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            string path = roots.Confine(BoardJson.RequiredString(body, "path"), BoardRoot.Saves);
            if (!path.EndsWith(".yaml", StringComparison.Ordinal)) throw BoardException.BadRequest("field 'path': save the arguments as a .yaml file");
            var plan = TrainForm.Plan(roots, body["form"] as JsonObject ?? throw BoardException.BadRequest("field 'form' is required"));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            IO.AtomicFile.WriteText(path, plan.Yaml);
            return BoardJson.Reply(new JsonObject { ["path"] = roots.Display(path) });
        });
        api.MapPost("/train/load", async (HttpContext ctx) =>
        {
            string path = roots.Confine(BoardJson.RequiredString(await BoardJson.ReadObjectAsync(ctx), "path"), BoardRoot.Saves, BoardRoot.Data);
            if (!File.Exists(path)) throw BoardException.NotFound($"{roots.Display(path)} does not exist");
            return BoardJson.Reply(new JsonObject { ["values"] = TrainForm.ReadYaml(path) });
        });
        api.MapPost("/runs", async (HttpContext ctx) =>
        {
            var plan = TrainForm.Plan(roots, await BoardJson.ReadObjectAsync(ctx));
            string dir = board.Runs.Enqueue(plan);
            return BoardJson.Reply(RunFolders.Describe(roots, dir));
        });
        api.MapGet("/runs", () => BoardJson.Reply(new JsonObject
        {
            ["runs"] = new JsonArray(RunFolders.All(roots).Select(dir => (JsonNode)RunFolders.Describe(roots, dir)).ToArray()),
        }));
        api.MapPost("/runs/abort", async (HttpContext ctx) =>
        {
            string dir = RunDir(roots, BoardJson.RequiredString(await BoardJson.ReadObjectAsync(ctx), "run"));
            board.Runs.Abort(dir);
            return BoardJson.Reply(RunFolders.Describe(roots, dir));
        });
        api.MapGet("/runs/events", (HttpContext ctx) => new RunEventStream(board, RunDir(roots, BoardJson.Query(ctx, "run"))).WriteAsync(ctx));
        api.MapGet("/runs/file", (HttpContext ctx) =>
        {
            string dir = RunDir(roots, BoardJson.Query(ctx, "run"));
            string name = BoardJson.Query(ctx, "name");
            if (!RunFiles.Contains(name)) throw BoardException.NotFound($"a run's {BoardException.Quote(name)} is not served (these are: {string.Join(", ", RunFiles)})");
            string path = Path.Combine(dir, name);
            if (!File.Exists(path)) throw BoardException.NotFound($"{roots.Display(path)} does not exist (yet)");
            return Results.Bytes(File.ReadAllBytes(path), StaticAssets.ContentType(path) is var type && type != "application/octet-stream" ? type : "text/plain; charset=utf-8");
        });
    }

    /// <summary>The data root and every folder below it (two levels) holding a dataset_info.json.</summary>
    public static IReadOnlyList<string> DatasetDirs(BoardRoots roots)
    {
        string data = roots[BoardRoot.Data];
        if (!Directory.Exists(data)) return [];
        var dirs = new List<string> { roots.Display(data) };
        dirs.AddRange(Directory.EnumerateFiles(data, DatasetRegistry.FileName, new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 2 })
            .Select(f => Path.GetDirectoryName(f)!).Where(d => d != data).Order(StringComparer.Ordinal).Select(roots.Display));
        return dirs;
    }

    /// <summary>A dataset folder's registry, confined to the data root; a missing or malformed dataset_info.json is a 422 naming the file and the problem.</summary>
    private static DatasetRegistry LoadRegistry(BoardRoots roots, string dir)
    {
        string real = roots.Confine(dir, BoardRoot.Data);
        try
        {
            return DatasetRegistry.Load(real, roots[BoardRoot.Data]);
        }
        catch (FileNotFoundException)
        {
            throw new BoardException(422, $"{roots.Display(Path.Combine(real, DatasetRegistry.FileName))} does not exist: a dataset folder lists its datasets there");
        }
        catch (InvalidDataException e)
        {
            throw new BoardException(422, e.Message);
        }
    }

    private static string RunDir(BoardRoots roots, string run)
    {
        string dir = roots.Confine(run, BoardRoot.Saves);
        if (!Directory.Exists(dir)) throw BoardException.NotFound($"no run at {BoardException.Quote(run)}");
        return dir;
    }

    // A page of records encoded as training would: each token with its text and whether it is trained (its label is
    // the token) or masked (prompt, label -100).
    private static JsonObject Preview(BoardRoots roots, JsonObject body)
    {
        var model = TopBarEndpoints.ResolveModel(roots, BoardJson.RequiredString(body, "model"));
        var registry = LoadRegistry(roots, BoardJson.RequiredString(body, "dataset_dir"));
        string dataset = BoardJson.RequiredString(body, "dataset");
        string stage = BoardJson.OptionalString(body, "stage") ?? "sft";
        int page = Integer(body, "page", 0, 0, int.MaxValue);
        int size = Integer(body, "page_size", 5, 1, MaxPreviewPage);
        int cutoff = Integer(body, "cutoff_len", 2048, 1, 1 << 20);
        var tokenizer = Tokenizer.FromDirectory(model.Folder);
        ChatTemplate template;
        try
        {
            template = ChatTemplates.ForModel(BoardJson.OptionalString(body, "template") ?? "auto", model.Folder, tokenizer);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or ArgumentException)
        {
            throw BoardException.BadRequest($"template: {e.Message}");
        }
        var processor = new SupervisedProcessor(tokenizer, template, cutoff, Flag(body, "train_on_prompt"), Flag(body, "mask_history"));
        (IReadOnlyList<DatasetPreview.Record> Records, int Total) found;
        try
        {
            found = DatasetPreview.Page(registry, dataset, stage, processor, page * size, size);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidDataException or ArgumentException)
        {
            throw new BoardException(422, e.Message);
        }
        var records = new JsonArray();
        foreach (var record in found.Records)
            records.Add(new JsonObject
            {
                ["index"] = record.Index,
                ["location"] = record.Location,
                ["problem"] = record.Problem,
                ["examples"] = new JsonArray(record.Examples.Select(example => (JsonNode)new JsonArray(example.InputIds.Select((id, i) => (JsonNode)new JsonObject
                {
                    ["text"] = tokenizer.Decode([id]),
                    ["trained"] = example.Labels[i] != SupervisedCollator.IgnoreIndex,
                }).ToArray())).ToArray()),
            });
        return new JsonObject { ["template"] = template.Name, ["total"] = found.Total, ["page"] = page, ["page_size"] = size, ["records"] = records };
    }

    private static bool Flag(JsonObject body, string field) => body[field] switch
    {
        null => false,
        JsonValue v when v.TryGetValue(out bool b) => b,
        JsonValue v when v.TryGetValue(out string? s) && bool.TryParse(s, out bool parsed) => parsed,
        _ => throw BoardException.BadRequest($"field '{field}' must be true or false"),
    };

    private static int Integer(JsonObject body, string field, int fallback, int min, int max)
    {
        int value = body[field] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out int n) => n,
            JsonValue v when v.TryGetValue(out string? s) && int.TryParse(s, out int parsed) => parsed,
            _ => throw BoardException.BadRequest($"field '{field}' must be a whole number"),
        };
        return value >= min && value <= max ? value : throw BoardException.BadRequest($"field '{field}' must be between {min} and {max}, got {value}");
    }
}
