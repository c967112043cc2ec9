using System.Text.Json.Nodes;

namespace SharpTune.Board;

/// <summary>
/// The page's labels in English and Chinese. Each tab declares its labels in its own pair of dictionaries,
/// <c>wwwroot/i18n/TAB.en.json</c> and <c>TAB.zh.json</c> (keys prefixed with the tab's name), so tabs are added
/// without touching each other's files; <c>GET /api/i18n/LANG</c> serves their union. Markup names a label with
/// <c>data-i18n="key"</c> (its text), <c>data-i18n-title</c> or <c>data-i18n-placeholder</c>; scripts call
/// <c>Board.t("key")</c>.
/// </summary>
public sealed class I18n
{
    public static readonly IReadOnlyList<string> Languages = ["en", "zh"];

    private readonly Dictionary<string, JsonObject> _dictionaries = new(StringComparer.Ordinal);

    public I18n(StaticAssets assets)
    {
        foreach (string language in Languages)
        {
            var merged = new JsonObject();
            foreach (string path in assets.Paths.Where(p => p.StartsWith("i18n/", StringComparison.Ordinal) && p.EndsWith($".{language}.json", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            {
                assets.TryGet(path, out byte[] bytes);
                var dictionary = JsonNode.Parse(bytes) as JsonObject ?? throw new InvalidDataException($"wwwroot/{path}: not a JSON object");
                foreach (var (key, value) in dictionary)
                {
                    if (merged.ContainsKey(key)) throw new InvalidDataException($"wwwroot/{path}: label '{key}' is declared twice");
                    merged[key] = value?.DeepClone();
                }
            }
            _dictionaries[language] = merged;
        }
    }

    /// <summary>Every label of a language, by key.</summary>
    public JsonObject Dictionary(string language) =>
        _dictionaries.TryGetValue(language, out var d) ? d : throw BoardException.NotFound($"no labels for language {BoardException.Quote(language)} (there are: {string.Join(", ", Languages)})");
}
