using System.Globalization;
using System.Text.Json;

namespace SharpTune.IO;

/// <summary>
/// Typed, range-checked access to the keys of a JSON config file (config.json, generation_config.json,
/// adapter_config.json) with errors that name the file and key: the one validation path for such values.
/// <paramref name="error"/> makes the exception from a message that already names the file;
/// <paramref name="keyPrefix"/> names a nested object's keys ("rope_scaling.").
/// </summary>
internal readonly struct JsonConfigReader(JsonElement root, string source, Func<string, Exception> error, string keyPrefix = "")
{
    private JsonElement? Find(string key) =>
        root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>A reader of the nested object <paramref name="node"/>, whose keys messages show as "key.nested".</summary>
    public JsonConfigReader Nested(JsonElement node, string key) => new(node, source, error, keyPrefix + key + ".");

    private Exception Error(string key, string problem) => error($"{source}: '{keyPrefix}{key}' {problem}");

    public string RequiredString(string key) =>
        OptionalString(key) ?? throw error($"{source}: required key '{keyPrefix}{key}' is missing");

    public string? OptionalString(string key)
    {
        if (Find(key) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error(key, "must be a string");
    }

    public int RequiredInt(string key, int min = int.MinValue) =>
        OptionalInt(key, min) ?? throw error($"{source}: required key '{keyPrefix}{key}' is missing");

    public int? OptionalInt(string key, int min = int.MinValue) =>
        Find(key) is { } v ? Int(key, v, min) : null;

    public double RequiredDouble(string key, double min = double.NegativeInfinity, bool minExclusive = false) =>
        OptionalDouble(key, min, minExclusive) ?? throw error($"{source}: required key '{keyPrefix}{key}' is missing");

    public double? OptionalDouble(string key, double min = double.NegativeInfinity, bool minExclusive = false)
    {
        if (Find(key) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !double.IsFinite(v.GetDouble()))
            throw Error(key, $"must be a number, got {MessageText.Quote(v.GetRawText())}");
        double value = v.GetDouble();
        if (minExclusive ? !(value > min) : !(value >= min))
            throw Error(key, $"must be {(minExclusive ? "greater than" : "at least")} {Format(min)}, got {Format(value)}");
        return value;
    }

    public bool? OptionalBool(string key)
    {
        if (Find(key) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(key, "must be true or false"),
        };
    }

    public int[] OptionalIntOrList(string key, int min = int.MinValue)
    {
        if (Find(key) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.Array)
        {
            var ids = new int[v.GetArrayLength()];
            for (int i = 0; i < ids.Length; i++) ids[i] = Int($"{key}[{i}]", v[i], min);
            return ids;
        }
        return [Int(key, v, min)];
    }

    private int Int(string key, JsonElement v, int min)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value))
            throw Error(key, v.ValueKind == JsonValueKind.Number || min != int.MinValue
                ? $"must be an integer from {min} to {int.MaxValue}, got {MessageText.Quote(v.GetRawText())}"
                : $"must be an integer, got {MessageText.Quote(v.GetRawText())}");
        return value >= min ? value : throw Error(key, $"must be at least {min}, got {value}");
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
