using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Board.Tasks;

namespace SharpTune.Board.Compare;

/// <summary>
/// The compare tab's API: ask the base and each selected adapter the same questions (typed, or a dataset's records
/// from the data root), report in saves/KEY/compare/compare_TIMESTAMP; follow it, stop it.
/// </summary>
public static class CompareEndpoints
{
    /// <summary>The most questions one comparison may type in.</summary>
    public const int MaxQuestions = 200;

    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        var slot = new BoardTaskSlot();
        board.Stopping.Register(() => slot.Latest?.Cancel());
        api.MapPost("/compare", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            var selected = TabSelection.Read(board.Roots, body);
            var questions = Strings(body, "questions");
            var datasets = Strings(body, "datasets");
            if ((questions.Count == 0) == (datasets.Count == 0))
                throw BoardException.BadRequest("give either 'questions' (typed, one per line) or 'datasets' (names from data/dataset_info.json), not both");
            if (questions.Count > MaxQuestions) throw BoardException.BadRequest($"field 'questions' holds {questions.Count} questions; at most {MaxQuestions}");
            int? maxSamples = body["max_samples"] is null ? null : BoardJson.RequiredInteger(body, "max_samples", 1, 100_000);
            int maxNewTokens = BoardJson.RequiredInteger(body, "max_new_tokens", 1, 4096);
            string stem = Path.Combine(board.Roots[BoardRoot.Saves], selected.ModelKey, "compare",
                "compare_" + DateTime.Now.ToString("yyyy-MM-dd-HH-mm-ss", CultureInfo.InvariantCulture));
            // Two comparisons in one second get folders of their own.
            string output = stem;
            for (int n = 2; Path.Exists(output); n++) output = $"{stem}-{n}";
            try
            {
                CompareTab.Start(slot, new CompareTabRequest(selected.ModelDir, selected.Adapters, selected.Template, questions, datasets,
                    board.Roots[BoardRoot.Data], maxSamples, maxNewTokens, board.Roots.Confine(output, BoardRoot.Saves), selected.Quantization), board.Roots.Display);
            }
            catch (ArgumentException e)
            {
                throw BoardException.BadRequest(e.Message);
            }
            return BoardJson.Reply(slot.ToJson());
        });
        api.MapGet("/compare/status", () => BoardJson.Reply(slot.ToJson()));
        api.MapPost("/compare/cancel", () =>
        {
            slot.Latest?.Cancel();
            return BoardJson.Reply(slot.ToJson());
        });
    }

    private static List<string> Strings(JsonObject body, string field) => body[field] switch
    {
        null => [],
        JsonArray list => list.Select((item, i) => item is JsonValue v && v.TryGetValue(out string? s) && s.Trim().Length > 0
            ? s.Trim()
            : throw BoardException.BadRequest($"field '{field}[{i}]' must be a non-empty string")).ToList(),
        _ => throw BoardException.BadRequest($"field '{field}' must be an array of strings"),
    };

}
