using System.Text.Json;

namespace SharpTune.Api;

/// <summary>Typed access to a request body's fields; a field of the wrong type or range is a 400 naming it.</summary>
public sealed class RequestReader(JsonElement root, string prefix = "")
{
    public JsonElement Root => root;

    /// <summary>The body's fields, once every string and field name in it is known to be text (<see cref="CheckText"/>).</summary>
    public static RequestReader ForBody(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest("the request body must be a JSON object");
        CheckText(root, "");
        return new RequestReader(root);
    }

    // JSON carries invalid UTF-8 bytes and lone surrogate escapes ("\ud800") through parsing; only turning them into
    // .NET strings fails. Checking the whole body once, before any field is read, makes that a 400 naming the field
    // wherever it is (tools and stop strings included), instead of an exception deep inside a handler.
    private static void CheckText(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                try
                {
                    element.GetString();
                }
                catch (InvalidOperationException)
                {
                    throw ApiException.BadRequest($"{path} is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate", path);
                }
                break;
            case JsonValueKind.Object:
                foreach (var field in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = field.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        string where = path.Length == 0 ? "the request body" : path;
                        throw ApiException.BadRequest($"a field name in {where} is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate", path.Length == 0 ? null : path);
                    }
                    string segment = ApiException.Shorten(name);
                    CheckText(field.Value, path.Length == 0 ? segment : $"{path}.{segment}");
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray()) CheckText(item, $"{path}[{i++}]");
                break;
        }
    }

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

    /// <summary>
    /// Refuses a field outside <paramref name="known"/>, as OpenAI does, so that a misspelt or unserved parameter is
    /// never silently ignored.
    /// </summary>
    public void RejectUnknown(IReadOnlySet<string> known)
    {
        foreach (var field in root.EnumerateObject())
            if (!known.Contains(field.Name))
                throw new ApiException(400, $"unknown parameter {ApiException.Quote(Path(field.Name))}", ApiException.Shorten(Path(field.Name)), "unknown_parameter");
    }

    /// <summary>
    /// A parameter OpenAI defines that this server does not implement: absent, null or a value that asks for nothing
    /// (<paramref name="isDefault"/>) passes; anything else is a 400 saying what is served (<paramref name="served"/>,
    /// or nothing).
    /// </summary>
    public void OnlyDefault(string name, Func<JsonElement, bool> isDefault, string? served = null)
    {
        if (Get(name) is { } value && !isDefault(value))
            throw Invalid(name, served is null ? "is not supported" : $"is not supported (only {served})");
    }

    public ApiException Invalid(string name, string problem) => ApiException.BadRequest($"{Path(name)} {problem}", Path(name));
}
