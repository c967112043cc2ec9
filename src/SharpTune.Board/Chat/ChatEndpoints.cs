using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpTune.Api;

namespace SharpTune.Board.Chat;

/// <summary>
/// The chat tab's API: load and unload the one chat model (<see cref="ChatModelHost"/>), read its state, and stream a
/// reply as JSON lines: <c>{"text": piece}</c> as the text comes, then <c>{"done": true, ...}</c> with the finish
/// reason, the token counts and, when tools were offered, the calls parsed from the reply.
/// </summary>
public static class ChatEndpoints
{
    public static void Map(RouteGroupBuilder api, BoardServer board)
    {
        var host = new ChatModelHost();
        // Stopping the board stops the replies and frees the model.
        board.Stopping.Register(host.Dispose);
        api.MapGet("/chat/status", () => BoardJson.Reply(StatusJson(board, host.Status)));
        api.MapPost("/chat/load", async (HttpContext ctx) =>
        {
            var selected = TabSelection.Read(board.Roots, await BoardJson.ReadObjectAsync(ctx));
            host.Load(new ChatModelRequest(selected.ModelDir, selected.Adapters, selected.Template, selected.Quantization));
            return BoardJson.Reply(StatusJson(board, host.Status));
        });
        api.MapPost("/chat/unload", () =>
        {
            host.Unload();
            return BoardJson.Reply(StatusJson(board, host.Status));
        });
        api.MapPost("/chat/reply", async (HttpContext ctx) =>
        {
            var body = await BoardJson.ReadObjectAsync(ctx);
            // The page going away (or the board stopping) ends the generation at its next token.
            using var ended = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, board.Stopping);
            ChatReply reply;
            try
            {
                reply = host.Reply(body, ended.Token);
            }
            catch (ApiException e)
            {
                throw new BoardException(e.Status, e.Message);
            }
            try
            {
                await StreamAsync(ctx, reply, ended.Token);
            }
            finally
            {
                if (!reply.Job.Outcome.IsCompleted) ended.Cancel();
            }
        });
    }

    private static async Task StreamAsync(HttpContext ctx, ChatReply reply, CancellationToken ended)
    {
        var job = reply.Job;
        ctx.Response.ContentType = "application/x-ndjson; charset=utf-8";
        await foreach (string piece in job.Pieces.ReadAllAsync(ended))
            await WriteLineAsync(ctx, new JsonObject { ["text"] = piece });
        GenerationOutcome outcome;
        try
        {
            outcome = await job.Outcome;
        }
        catch (OperationCanceledException)
        {
            await WriteLineAsync(ctx, new JsonObject { ["done"] = true, ["finish_reason"] = "cancelled" });
            return;
        }
        var done = new JsonObject
        {
            ["done"] = true,
            ["finish_reason"] = outcome.FinishReason,
            ["prompt_tokens"] = outcome.PromptTokens,
            ["completion_tokens"] = outcome.CompletionTokens,
        };
        if (reply.WithTools && ToolCallParser.Parse(outcome.Text) is { Calls.Count: > 0 } parsed)
        {
            done["content"] = parsed.Content;
            done["tool_calls"] = new JsonArray(parsed.Calls.Select(c => (JsonNode?)new JsonObject { ["name"] = c.Name, ["arguments"] = c.ArgumentsJson }).ToArray());
        }
        await WriteLineAsync(ctx, done);
    }

    private static async Task WriteLineAsync(HttpContext ctx, JsonObject line)
    {
        await ctx.Response.WriteAsync(line.ToJsonString(BoardJson.Options) + "\n");
        await ctx.Response.Body.FlushAsync();
    }

    private static JsonObject StatusJson(BoardServer board, ChatModelStatus s) => new()
    {
        ["state"] = s.State.ToString().ToLowerInvariant(),
        ["model"] = s.Request is null ? null : board.Roots.Display(s.Request.ModelDir),
        ["adapters"] = s.Request is null ? null : new JsonArray(s.Request.Adapters.Select(a => (JsonNode?)board.Roots.Display(a)).ToArray()),
        ["template"] = s.Template,
        ["thinking"] = s.Thinking,
        ["seconds"] = Math.Round(s.Seconds, 1),
        ["error"] = s.Error,
    };
}
