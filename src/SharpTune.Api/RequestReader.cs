using System.Text.Json;

namespace SharpTune.Api;

/// <summary>Typed access to a request body's fields; a field of the wrong type or range is a 400 naming it.</summary>
public sealed class RequestReader(JsonElement root, string prefix = "")
{
    public JsonElement Root => root;

    public static RequestReader ForBody(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object ? new RequestReader(root) : throw ApiException.BadRequest("the request body must be a JSON object");

    public string Path(string name) => prefix + name;

    /// <summary>The field, or null when it is absent or JSON null.</summary>
    public JsonElement? Get(string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public string? String(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        _ => throw Invalid(name, "must be a string"),
    };

    public string RequiredString(string name) => String(name) ?? throw ApiException.BadRequest($"{Path(name)} is required", Path(name));

    public bool? Bool(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw Invalid(name, "must be a boolean"),
    };

    public double? Number(string name, double min, double max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw Invalid(name, "must be a number");
        double x = v.GetDouble();
        return x >= min && x <= max ? x : throw Invalid(name, $"must be between {min} and {max}, got {x}");
    }

    public long? Integer(string name, long min, long max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Invalid(name, "must be an integer");
        return x >= min && x <= max ? x : throw Invalid(name, $"must be between {min} and {max}, got {x}");
    }

    public ApiException Invalid(string name, string problem) => ApiException.BadRequest($"{Path(name)} {problem}", Path(name));
}
