using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace SharpTune.Board;

/// <summary>The page's frame: labels, the login and what the board is (its roots, whether a token is needed).</summary>
public static class SessionEndpoints
{
    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        api.MapGet("/i18n/{language}", (string language) => BoardJson.Reply(board.I18n.Dictionary(language)));
        api.MapGet("/session", (HttpContext ctx) => BoardJson.Reply(new JsonObject
        {
            ["token_required"] = board.Auth.TokenRequired,
            ["signed_in"] = board.Auth.IsSignedIn(ctx.Request),
        }));
        api.MapPost("/login", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            board.Auth.SignIn(ctx, BoardJson.RequiredString(body, "token"));
            return BoardJson.Reply(new JsonObject { ["signed_in"] = true });
        });
        api.MapGet("/info", () => BoardJson.Reply(new JsonObject
        {
            ["root"] = board.Roots.Root,
            ["models"] = board.Roots.Display(board.Roots[BoardRoot.Models]),
            ["data"] = board.Roots.Display(board.Roots[BoardRoot.Data]),
            ["saves"] = board.Roots.Display(board.Roots[BoardRoot.Saves]),
            ["hub_cache"] = board.Roots[BoardRoot.HubCache],
        }));
    }
}
