using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SharpTune.Api;

namespace SharpTune.Board;

/// <summary>
/// The board's JSON conventions: request bodies are <c>application/json</c> objects (415 otherwise: a page elsewhere
/// could POST a form without a preflight), a missing or mistyped field is a 400 naming it, replies are
/// <see cref="Reply"/>.
/// </summary>
public static class BoardJson
{
    public static readonly JsonSerializerOptions Options = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A JSON reply with status 200.</summary>
    public static IResult Reply(JsonNode body) => Results.Text(body.ToJsonString(Options), "application/json; charset=utf-8");

    /// <summary>The request's body as a JSON object.</summary>
    public static async Task<JsonObject> ReadObjectAsync(HttpContext ctx)
    {
        if (!ServerBinding.IsJson(ctx.Request.ContentType))
            throw new BoardException(415, $"send the body as Content-Type: application/json, got {(string.IsNullOrEmpty(ctx.Request.ContentType) ? "none" : BoardException.Quote(ctx.Request.ContentType))}");
        try
        {
            return await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted) as JsonObject
                ?? throw BoardException.BadRequest("the request body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw BoardException.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
    }

    /// <summary>A required string field.</summary>
    public static string RequiredString(JsonObject body, string field) =>
        OptionalString(body, field) ?? throw BoardException.BadRequest($"field '{field}' is required");

    /// <summary>A string field, or null when absent or null.</summary>
    public static string? OptionalString(JsonObject body, string field) => body[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw BoardException.BadRequest($"field '{field}' must be a string, got {other.GetValueKind().ToString().ToLowerInvariant()}"),
    };

    /// <summary>A required whole-number field within [min, max].</summary>
    public static int RequiredInteger(JsonObject body, string field, int min, int max) =>
        body[field] is JsonValue v && v.TryGetValue(out int n) && n >= min && n <= max
            ? n
            : throw BoardException.BadRequest($"field '{field}' must be a whole number from {min} to {max}");

    /// <summary>A required query parameter.</summary>
    public static string Query(HttpContext ctx, string name) =>
        ctx.Request.Query[name] is { Count: 1 } value && value[0] is { Length: > 0 } text
            ? text
            : throw BoardException.BadRequest($"query parameter '{name}' is required (once)");
}
