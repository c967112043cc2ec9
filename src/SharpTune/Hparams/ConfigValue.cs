using System.Globalization;
using System.Text.Json;
using SharpTune.IO;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SharpTune.Hparams;

/// <summary>
/// One key's YAML value with typed readers. Scalars are read as LLaMA-Factory reads them through OmegaConf
/// (YAML 1.1 booleans, numbers also when quoted, so <c>learning_rate: "1.0e-4"</c> works); every failure names the key,
/// the expected type and where the value was written.
/// </summary>
internal sealed class ConfigValue(string key, YamlNode node, string origin)
{
    private static readonly HashSet<string> TrueWords = ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"];
    private static readonly HashSet<string> FalseWords = ["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"];

    public string Key => key;

    /// <summary>Where the value came from, e.g. "line 9 of train.yaml" or "command-line override".</summary>
    public string Origin => origin;

    public bool IsNull => node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    /// <summary>The scalar's text, or null for YAML null, a list or a mapping.</summary>
    public string? ScalarText => !IsNull && node is YamlScalarNode scalar ? scalar.Value : null;

    public ConfigException Error(string problem) => new($"{key}: {problem} ({origin})");

    public int Int(int min = int.MinValue, int max = int.MaxValue)
    {
        string text = Scalar("an integer");
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
            throw Error($"expected an integer, got {MessageText.Quote(text)}");
        if (value < min) throw Error($"must be at least {min}, got {value}");
        return value <= max ? value : throw Error($"must be at most {max}, got {value}");
    }

    public int? NullableInt(int min = int.MinValue) => IsNull ? null : Int(min);

    /// <summary>
    /// A step count that transformers types as a float (logging_steps, save_steps, eval_steps): whole numbers such as
    /// 500 or 500.0 are accepted; values below 1, which transformers reads as a fraction of the total steps, are not.
    /// </summary>
    public int Steps()
    {
        double value = Double();
        if (value < 1) throw Error($"must be a whole number of steps ≥ 1, got {Format(value)} (fractions of the total steps are not supported)");
        if (value != Math.Floor(value) || value > int.MaxValue) throw Error($"expected a whole number of steps, got {Format(value)}");
        return (int)value;
    }

    public int? NullableSteps() => IsNull ? null : Steps();

    public double Double(double min = double.NegativeInfinity, double max = double.PositiveInfinity, bool maxExclusive = false)
    {
        string text = Scalar("a number");
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            throw Error($"expected a number, got {MessageText.Quote(text)}");
        if (value < min || value > max || (maxExclusive && value == max))
        {
            var bounds = new List<string>();
            if (!double.IsNegativeInfinity(min)) bounds.Add($"at least {Format(min)}");
            if (!double.IsPositiveInfinity(max)) bounds.Add(maxExclusive ? $"below {Format(max)}" : $"at most {Format(max)}");
            throw Error($"must be {string.Join(" and ", bounds)}, got {Format(value)}");
        }
        return value;
    }

    public bool Bool()
    {
        string text = Scalar("true or false");
        if (TrueWords.Contains(text)) return true;
        if (FalseWords.Contains(text)) return false;
        throw Error($"expected true or false, got {MessageText.Quote(text)}");
    }

    /// <summary>Any scalar as its text (LLaMA-Factory passes YAML numbers to string options unchanged).</summary>
    public string Text() => Scalar("a string");

    public string? NullableText() => IsNull ? null : Text();

    /// <summary>A comma-separated string or a YAML list, items trimmed (LLaMA-Factory's <c>split_arg</c>); null is empty.</summary>
    public List<string> Names()
    {
        if (IsNull) return [];
        IEnumerable<string> items = node switch
        {
            YamlSequenceNode sequence => sequence.Children.Select(child => child is YamlScalarNode { Value: { } v } ? v : throw Error("expected a list of names, got a nested list or mapping")),
            YamlScalarNode { Value: { } text } => text.Split(','),
            _ => throw Error($"expected a comma-separated list of names, got {Describe()}"),
        };
        var names = items.Select(item => item.Trim()).ToList();
        if (names.Any(name => name.Length == 0)) throw Error($"empty name in {Describe()}");
        return names;
    }

    /// <summary>
    /// A mapping of names to numbers, written as a YAML mapping or a JSON object string (transformers accepts both for
    /// lr_scheduler_kwargs); null is empty.
    /// </summary>
    public Dictionary<string, double> NumberMap()
    {
        if (IsNull) return [];
        var map = new Dictionary<string, double>(StringComparer.Ordinal);
        switch (node)
        {
            case YamlMappingNode mapping:
                foreach (var (name, value) in mapping.Children)
                {
                    string entry = name is YamlScalarNode { Value: { } text } ? text : throw Error("expected names as the mapping's keys");
                    var entryValue = new ConfigValue($"{key}.{entry}", value, origin);
                    map[entry] = entryValue.Double();
                }
                return map;
            case YamlScalarNode { Value: { } text } when text.TrimStart().StartsWith('{'):
                try
                {
                    using var doc = JsonDocument.Parse(text);
                    foreach (var property in doc.RootElement.EnumerateObject())
                        map[property.Name] = property.Value.ValueKind == JsonValueKind.Number
                            ? property.Value.GetDouble()
                            : throw Error($"{MessageText.Quote(property.Name)} must be a number, got {MessageText.Quote(property.Value.GetRawText())}");
                    return map;
                }
                catch (JsonException e)
                {
                    throw Error($"expected a mapping, got a string that is not a JSON object ({e.Message})");
                }
            default:
                throw Error($"expected a mapping of names to numbers, got {Describe()}");
        }
    }

    /// <summary>
    /// One of <paramref name="supported"/>; a value in <paramref name="notYet"/> (valid in LLaMA-Factory) is reported as
    /// not supported yet, naming the planned feature that brings it when <paramref name="planned"/> has one; anything
    /// else as invalid.
    /// </summary>
    public string Choice(IReadOnlyList<string> supported, IReadOnlyList<string> notYet, IReadOnlyDictionary<string, string>? planned = null)
    {
        string text = Text();
        if (supported.Contains(text)) return text;
        if (notYet.Contains(text))
        {
            string plan = planned is not null && planned.TryGetValue(text, out string? feature) ? $"; planned: {feature}" : "";
            throw new ConfigException($"{key} {MessageText.Quote(text)} is not supported yet (supported: {string.Join(", ", supported)}{plan}) ({origin})");
        }
        throw Error($"expected one of {string.Join(", ", supported.Concat(notYet))}, got {MessageText.Quote(text)}");
    }

    /// <summary>True when the value is the scalar <paramref name="text"/> (for "this value is LLaMA-Factory's default" checks).</summary>
    public bool Is(string text) => ScalarText == text;

    public bool IsFalse => ScalarText is { } text && FalseWords.Contains(text);

    public bool IsTrue => ScalarText is { } text && TrueWords.Contains(text);

    private string Scalar(string expected) =>
        node is YamlScalarNode { Value: { } text } && !IsNull ? text : throw Error($"expected {expected}, got {Describe()}");

    private string Describe() => node switch
    {
        YamlSequenceNode => "a list",
        YamlMappingNode => "a mapping",
        _ when IsNull => "null",
        YamlScalarNode scalar => MessageText.Quote(scalar.Value ?? ""),
        _ => "an unsupported YAML node",
    };

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
