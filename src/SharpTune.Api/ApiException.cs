using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Api;

/// <summary>
/// A request the server refuses, with the HTTP status and OpenAI's error object
/// (<c>{"error": {"message", "type", "param", "code"}}</c>).
/// </summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public static ApiException BadRequest(string message, string? param = null) => new(400, message, param);

    /// <summary>The longest piece of a client's value an error message quotes.</summary>
    public const int QuotedLength = 40;

    /// <summary>A value the client sent, quoted for an error message and cut when long (<see cref="MessageText.Quote"/>).</summary>
    public static string Quote(string value) => MessageText.Quote(value, QuotedLength);

    /// <summary>The value when short, else its first <see cref="QuotedLength"/> characters and '…' (<see cref="MessageText.Shorten"/>).</summary>
    public static string Shorten(string value) => MessageText.Shorten(value, QuotedLength);

    public JsonObject ToJson() => ErrorBody(Message, Type, Param, Code);

    public static JsonObject ErrorBody(string message, string type, string? param, string? code) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = message,
            ["type"] = type,
            ["param"] = param,
            ["code"] = code,
        },
    };
}
