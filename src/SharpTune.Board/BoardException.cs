using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Board;

/// <summary>
/// A request the board refuses: the HTTP status and a message for the page, sent as <c>{"error": message}</c>
/// (every /api error has that shape). Messages name the file, record and field a bad input came from.
/// </summary>
public sealed class BoardException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;

    public static BoardException BadRequest(string message) => new(400, message);

    public static BoardException NotFound(string message) => new(404, message);

    /// <summary>A value the client sent, quoted for a message and cut when long.</summary>
    public static string Quote(string value) => MessageText.Quote(value, 80);

    public JsonObject ToJson() => new() { ["error"] = Message };
}
