using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Board.Tasks;
using SharpTune.Engine;
using SharpTune.Hparams;

namespace SharpTune.Board.Export;

/// <summary>The export tab's API: start a merge and export into saves/, follow its progress, stop it.</summary>
public static class ExportEndpoints
{
    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        var slot = new BoardTaskSlot();
        board.Stopping.Register(() => slot.Latest?.Cancel());
        api.MapPost("/export", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            var selected = TabSelection.Read(board.Roots, body);
            string exportDir = board.Roots.Confine(BoardJson.RequiredString(body, "export_dir"), BoardRoot.Saves);
            int size = BoardJson.RequiredInteger(body, "export_size", 1, 1000);
            var storeAs = BoardJson.OptionalString(body, "dtype") switch
            {
                null or "auto" => (DType?)null,
                "float32" => DType.F32,
                "float16" => DType.F16,
                "bfloat16" => DType.BF16,
                var other => throw BoardException.BadRequest($"field 'dtype' must be auto, float32, float16 or bfloat16, got {BoardException.Quote(other)}"),
            };
            try
            {
                ExportTab.Start(slot, new ExportRequest(selected.ModelDir, selected.Adapters, selected.Template, exportDir, size, storeAs), board.Roots.Display);
            }
            catch (ConfigException e)
            {
                throw BoardException.BadRequest(e.Message);
            }
            return BoardJson.Reply(slot.ToJson());
        });
        api.MapGet("/export/status", () => BoardJson.Reply(slot.ToJson()));
        api.MapPost("/export/cancel", () =>
        {
            slot.Latest?.Cancel();
            return BoardJson.Reply(slot.ToJson());
        });
    }
}
