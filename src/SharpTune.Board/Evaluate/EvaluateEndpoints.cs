using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Board.Runs;

namespace SharpTune.Board.Evaluate;

/// <summary>
/// The evaluate &amp; predict tab's API: queue an evaluation or prediction run (<see cref="EvaluateForm"/>, on the Train
/// tab's run queue), list the runs with results, and show a finished run's metrics (eval_results.json,
/// predict_results.json) and its predictions a page at a time, each row scored (<see cref="PredictionsBrowser"/>).
/// </summary>
public static class EvaluateEndpoints
{
    /// <summary>The result files whose metrics the tab shows, as the trainer writes them.</summary>
    public static readonly IReadOnlyList<string> ResultFiles = ["eval_results.json", "predict_results.json"];

    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        api.MapPost("/evaluate/start", async (HttpContext ctx) =>
        {
            string dir = board.Runs.Enqueue(EvaluateForm.Plan(board.Roots, await BoardJson.ReadObjectAsync(ctx)));
            return BoardJson.Reply(RunFolders.Describe(board.Roots, dir));
        });
        api.MapGet("/evaluate/runs", () => BoardJson.Reply(new JsonObject
        {
            ["runs"] = new JsonArray(RunsWithResults(board.Roots[BoardRoot.Saves]).Select(r => (JsonNode?)board.Roots.Display(r)).ToArray()),
        }));
        api.MapGet("/evaluate/results", (HttpContext ctx) =>
        {
            string run = board.Roots.Confine(BoardJson.Query(ctx, "run"), BoardRoot.Saves);
            var metrics = new JsonObject();
            foreach (string name in ResultFiles)
            {
                string path = Path.Combine(run, name);
                if (!File.Exists(path)) continue;
                metrics[name] = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                    ?? throw BoardException.BadRequest($"{board.Roots.Display(path)}: not a JSON object of metrics");
            }
            return BoardJson.Reply(new JsonObject { ["run"] = board.Roots.Display(run), ["metrics"] = metrics });
        });
        api.MapGet("/evaluate/predictions", (HttpContext ctx) =>
        {
            string run = board.Roots.Confine(BoardJson.Query(ctx, "run"), BoardRoot.Saves);
            int offset = Number(ctx, "offset", 0), limit = Number(ctx, "limit", 20);
            PredictionsPage page;
            try
            {
                page = PredictionsBrowser.Read(run, offset, limit);
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                throw BoardException.BadRequest(e.Message.Replace(run, board.Roots.Display(run), StringComparison.Ordinal));
            }
            return BoardJson.Reply(new JsonObject
            {
                ["total"] = page.Total,
                ["offset"] = offset,
                ["rows"] = new JsonArray(page.Rows.Select(r => (JsonNode?)new JsonObject
                {
                    ["line"] = r.Line,
                    ["prompt"] = r.Prompt,
                    ["reference"] = r.Reference,
                    ["prediction"] = r.Prediction,
                    ["bleu-4"] = r.Scores.Bleu4,
                    ["rouge-1"] = r.Scores.Rouge1,
                    ["rouge-2"] = r.Scores.Rouge2,
                    ["rouge-l"] = r.Scores.RougeL,
                }).ToArray()),
            });
        });
    }

    /// <summary>The folders under saves/ holding a result file, newest first; links are not followed out of saves/.</summary>
    public static IReadOnlyList<string> RunsWithResults(string saves)
    {
        if (!Directory.Exists(saves)) return [];
        var walk = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        return Directory.EnumerateFiles(saves, "*_results.json", walk)
            .Where(f => ResultFiles.Contains(Path.GetFileName(f)))
            .Select(f => Path.GetDirectoryName(f)!)
            .Distinct(StringComparer.Ordinal)
            .OrderByDescending(Directory.GetLastWriteTimeUtc)
            .ToList();
    }

    private static int Number(HttpContext ctx, string name, int fallback) =>
        ctx.Request.Query[name] is not { Count: > 0 } value ? fallback
        : value.Count == 1 && int.TryParse(value[0], NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n
        : throw BoardException.BadRequest($"query parameter '{name}' must be a whole number (once)");
}
