using SharpTune.Hparams;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// What `sharptune data clean` does: the rules that rewrite text (applied in order to every string value, or those
/// under <see cref="Fields"/>), then the rules that remove records (checked in order; the first that rejects a record
/// is its reason). Read from a YAML recipe, one entry per rule with its parameters:
/// <code>
/// fields: [instruction, input, output]   # optional: which top-level fields the rules look at
/// rules:
///   - control_characters
///   - unicode_normalization: {form: NFKC}
///   - text_length: {min: 10, max: 4000}
/// </code>
/// A recipe lists every rule that runs; a rule's parameters left out take data-juicer's defaults (see docs/data.md).
/// Without a recipe, <see cref="DefaultRules"/>.
/// </summary>
public sealed class CleaningRecipe
{
    public required IReadOnlyList<ITextRewriteRule> Rewrites { get; init; }

    public required IReadOnlyList<IRecordFilterRule> Filters { get; init; }

    /// <summary>Top-level fields the rules look at; null for every string of the record.</summary>
    public IReadOnlyList<string>? Fields { get; init; }

    /// <summary>
    /// The rules run without a recipe, with default parameters: every rule but punctuation (it would turn Chinese
    /// text's ，。 into ASCII), the block lists (they need lists) and special_characters, whose data-juicer default
    /// (at most 0.25, counting spaces and digits as special) removes 15–70% of LLaMA-Factory's own demo datasets.
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultRules =
    [
        "control_characters", "unicode_normalization", "whitespace", "empty_input_marker",
        "empty_output", "text_length", "character_repetition", "word_repetition", "alphanumeric", "unseeable_request",
    ];

    public static CleaningRecipe Default() => Create(null, [], null);

    /// <summary>
    /// The recipe at <paramref name="path"/> (or <see cref="DefaultRules"/> without one) with command-line settings
    /// applied: each sets one parameter of a rule, adding the rule if the recipe lacks it; <paramref name="fields"/>
    /// replaces the recipe's.
    /// </summary>
    /// <exception cref="ConfigException">Not YAML, or an unknown rule or parameter, or a parameter out of range: the message names the file, rule and parameter.</exception>
    public static CleaningRecipe Create(string? path, IReadOnlyList<(string Rule, string Parameter, string Value)> settings, IReadOnlyList<string>? fields)
    {
        var (entries, recipeFields) = path is null
            ? ([.. DefaultRules.Select(name => (name, new Dictionary<string, ConfigValue>()))], null)
            : ReadEntries(path);
        foreach (var (rule, parameter, value) in settings)
        {
            int index = entries.FindIndex(e => e.Rule == rule);
            if (index < 0) entries.Add((rule, new Dictionary<string, ConfigValue>()));
            var parameters = entries[index < 0 ? ^1 : index].Parameters;
            parameters[parameter] = new ConfigValue($"{rule}.{parameter}", new YamlScalarNode(value), "command line");
        }
        try
        {
            return FromEntries(entries, fields ?? recipeFields);
        }
        catch (ArgumentException e)
        {
            throw new ConfigException(path is null ? e.Message : $"{path}: {e.Message}");
        }
    }

    private static (List<(string Rule, Dictionary<string, ConfigValue> Parameters)>, IReadOnlyList<string>?) ReadEntries(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"recipe {path} does not exist", path);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(File.ReadAllText(path)));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{path} is not valid YAML: {e.Message.ReplaceLineEndings(" ")} (line {e.Start.Line})");
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigException($"{path}: a recipe is one mapping with 'rules' (and optionally 'fields')");
        IReadOnlyList<string>? fields = null;
        YamlSequenceNode? rules = null;
        foreach (var (keyNode, value) in root.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            string origin = $"line {keyNode.Start.Line} of {path}";
            switch (key)
            {
                case "fields": fields = new ConfigValue("fields", value, origin).Names(); break;
                case "rules": rules = value as YamlSequenceNode ?? throw new ConfigException($"rules: expected a list of rules ({origin})"); break;
                default: throw new ConfigException($"{path} line {keyNode.Start.Line}: unknown recipe key '{key}' (known: fields, rules)");
            }
        }
        if (rules is null) throw new ConfigException($"{path}: the recipe has no 'rules' list");
        var entries = new List<(string, Dictionary<string, ConfigValue>)>();
        foreach (var entry in rules.Children)
        {
            string origin = $"line {entry.Start.Line} of {path}";
            switch (entry)
            {
                case YamlScalarNode { Value: { } name }:
                    entries.Add((name, new Dictionary<string, ConfigValue>()));
                    break;
                case YamlMappingNode { Children.Count: 1 } mapping:
                    var (nameNode, parameters) = mapping.Children.Single();
                    string rule = ((YamlScalarNode)nameNode).Value ?? "";
                    var values = new Dictionary<string, ConfigValue>();
                    if (parameters is YamlMappingNode parameterMap)
                        foreach (var (p, v) in parameterMap.Children)
                            values[((YamlScalarNode)p).Value ?? ""] = new ConfigValue($"{rule}.{((YamlScalarNode)p).Value}", v, $"line {p.Start.Line} of {path}");
                    else if (parameters is not YamlScalarNode { Value: null or "" })
                        throw new ConfigException($"{rule}: parameters must be a mapping such as {{min: 10}} ({origin})");
                    entries.Add((rule, values));
                    break;
                default:
                    throw new ConfigException($"rules: each entry is a rule name, or one rule name mapped to its parameters ({origin})");
            }
        }
        return (entries, fields);
    }

    /// <summary>Builds the rules; parameters not given take their defaults.</summary>
    private static CleaningRecipe FromEntries(List<(string Rule, Dictionary<string, ConfigValue> Parameters)> entries, IReadOnlyList<string>? fields)
    {
        var rewrites = new List<ITextRewriteRule>();
        var filters = new List<IRecordFilterRule>();
        foreach (var (rule, parameters) in entries)
        {
            var reader = new Parameters(rule, parameters);
            switch (rule)
            {
                case "control_characters": rewrites.Add(new ControlCharactersRule()); break;
                case "unicode_normalization": rewrites.Add(new UnicodeNormalizationRule(reader.Choice("form", ["NFC", "NFKC"], "NFC"))); break;
                case "whitespace": rewrites.Add(new WhitespaceRule()); break;
                case "punctuation": rewrites.Add(new PunctuationRule()); break;
                case "empty_input_marker": rewrites.Add(new EmptyInputMarkerRule()); break;
                case "empty_output": filters.Add(new EmptyOutputRule()); break;
                case "text_length":
                    filters.Add(new BoundsRule(rule, "length in characters", reader.Int("min", 10), reader.Int("max", int.MaxValue), t => TextMeasures.Length(t)));
                    break;
                case "character_repetition":
                    int characters = reader.Int("rep_len", 10, min: 1);
                    filters.Add(new BoundsRule(rule, $"character {characters}-gram repetition ratio", reader.Double("min", 0), reader.Double("max", 0.5),
                        t => TextMeasures.CharacterRepetitionRatio(t, characters)));
                    break;
                case "word_repetition":
                    int words = reader.Int("rep_len", 10, min: 1);
                    filters.Add(new BoundsRule(rule, $"word {words}-gram repetition ratio", reader.Double("min", 0), reader.Double("max", 0.5),
                        t => TextMeasures.WordRepetitionRatio(t, words)));
                    break;
                case "special_characters":
                    filters.Add(new BoundsRule(rule, "special-character ratio", reader.Double("min", 0), reader.Double("max", 0.25), TextMeasures.SpecialCharacterRatio));
                    break;
                case "alphanumeric":
                    filters.Add(new BoundsRule(rule, "alphanumeric ratio", reader.Double("min", 0.25), reader.Double("max", int.MaxValue), TextMeasures.AlphanumericRatio));
                    break;
                case "blocked_keywords":
                    filters.Add(new BlockedKeywordsRule(rule, "text holds a blocked keyword", reader.Names("keywords")));
                    break;
                case "blocked_patterns": filters.Add(new BlockedPatternsRule(reader.Names("patterns"))); break;
                case "unseeable_request": filters.Add(new UnseeableRequestRule()); break;
                case "language_id":
                    filters.Add(LanguageIdRule.Create(reader.OptionalNames("lang"), reader.Double("min_score", 0.8), reader.OptionalNames("candidates")));
                    break;
                case "token_num":
                    filters.Add(TokenNumRule.Load(reader.Text("tokenizer", "a model folder with tokenizer.json; --tokenizer DIR"), reader.Text("template", fallback: "auto"),
                        reader.Int("min", 10), reader.Int("max", int.MaxValue)));
                    break;
                default:
                    throw new ArgumentException($"unknown rule '{rule}' (known: {string.Join(", ", DefaultRules.Concat(["punctuation", "special_characters", "blocked_keywords", "blocked_patterns", "language_id", "token_num"]))})");
            }
            reader.CheckAllRead();
        }
        if (rewrites.Select(r => r.Name).Concat(filters.Select(f => f.Name)).GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"rule '{twice.Key}' is listed twice");
        return new CleaningRecipe { Rewrites = rewrites, Filters = filters, Fields = fields };
    }

    /// <summary>A rule's parameters; one given that the rule does not read is an error naming it.</summary>
    private sealed class Parameters(string rule, Dictionary<string, ConfigValue> values)
    {
        private readonly HashSet<string> read = [];

        public int Int(string name, int fallback, int min = 0) => Take(name) is { } v ? v.Int(min) : fallback;

        public double Double(string name, double fallback) => Take(name) is { } v ? v.Double(0) : fallback;

        public string Choice(string name, string[] choices, string fallback)
        {
            if (Take(name) is not { } v) return fallback;
            string text = v.Text();
            return choices.Contains(text) ? text : throw v.Error($"expected one of {string.Join(", ", choices)}, got {SharpTune.IO.MessageText.Quote(text)}");
        }

        /// <summary>A text parameter: <paramref name="fallback"/> when not given, or, without one, an error saying what it needs (<paramref name="what"/>).</summary>
        public string Text(string name, string what = "", string? fallback = null) =>
            Take(name) is { } v ? v.Text() : fallback ?? throw new ArgumentException($"rule '{rule}' needs the parameter '{name}' ({what})");

        public List<string> OptionalNames(string name) => Take(name) is { } v ? v.Names() : [];

        public List<string> Names(string name) =>
            Take(name) is { } v ? v.Names() : throw new ArgumentException($"rule '{rule}' needs the parameter '{name}' (a list)");

        public void CheckAllRead()
        {
            if (values.Keys.FirstOrDefault(k => !read.Contains(k)) is { } unknown)
                throw new ArgumentException($"rule '{rule}' has no parameter '{unknown}'");
        }

        private ConfigValue? Take(string name)
        {
            read.Add(name);
            return values.GetValueOrDefault(name);
        }
    }
}
