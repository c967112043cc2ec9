using System.Text.Json.Nodes;

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
