using System.Globalization;
using System.Text.Json;
using Lingua;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// data-juicer's language_id_score_filter with Lingua (SearchPioneer.Lingua) in place of fastText's lid.176: the
/// record's text is identified among the candidate languages, and the record kept when the most likely language has
/// a confidence of at least <c>min_score</c> (0.8) and, if <c>lang</c> lists languages, is one of them. Lingua's
/// confidences are relative to the candidates (they sum to 1 over them), so a narrower candidate list is faster and
/// lighter but can only tell those languages apart. Models are read from Lingua's default folder beside the program
/// (<c>Lingua/LanguageModels/CODE/</c>); the sharptune program ships every language's, see docs/data.md. One detector
/// serves all cores: Lingua's LanguageDetector keeps only read-only fields and loads models into static
/// ConcurrentDictionaries of Lazy values, so concurrent calls are safe (checked by LanguageIdTests).
/// </summary>
public sealed class LanguageIdRule : IRecordFilterRule
{
    private readonly LanguageDetector detector;
    private readonly HashSet<Language> allowed;
    private readonly IReadOnlyList<string> allowedCodes;

    private LanguageIdRule(LanguageDetector detector, HashSet<Language> allowed, IReadOnlyList<string> allowedCodes, double minScore)
    {
        this.detector = detector;
        this.allowed = allowed;
        this.allowedCodes = allowedCodes;
        MinScore = minScore;
    }

    /// <summary>Lingua's model folder: its default, relative to the program.</summary>
    public static string ModelsDirectory => Path.Combine(AppContext.BaseDirectory, "Lingua", "LanguageModels");

    /// <param name="lang">ISO 639-1 codes of the languages to keep; empty keeps any language identified confidently enough.</param>
    /// <param name="candidates">ISO 639-1 codes of the languages the detector chooses among; empty for all of Lingua's 75.</param>
    /// <exception cref="ArgumentException">An unknown code, a kept language not among the candidates, fewer than two candidates, a score outside [0, 1], or a language whose model is not installed.</exception>
    public static LanguageIdRule Create(IReadOnlyList<string> lang, double minScore, IReadOnlyList<string> candidates)
    {
        if (minScore is < 0 or > 1) throw new ArgumentException($"rule 'language_id': min_score must lie in [0, 1], got {minScore.ToString(CultureInfo.InvariantCulture)}");
        var kept = lang.Select(code => Parse(code, "lang")).ToHashSet();
        var among = candidates.Count == 0 ? LanguageInfo.All().ToHashSet() : candidates.Select(code => Parse(code, "candidates")).ToHashSet();
        foreach (var language in kept.Where(l => !among.Contains(l)))
            throw new ArgumentException($"rule 'language_id': lang '{Code(language)}' is not among the candidates ({string.Join(", ", among.Select(Code))})");
        if (among.Count < 2) throw new ArgumentException("rule 'language_id': candidates must name at least two languages to choose among");
        foreach (var language in among)
            if (!Directory.Exists(Path.Combine(ModelsDirectory, Code(language))))
                throw new ArgumentException($"rule 'language_id': no Lingua language model for '{Code(language)}' in {ModelsDirectory} (the sharptune program ships them; a program built without them identifies only the languages it has: name those as candidates)");
        var detector = LanguageDetectorBuilder.FromLanguages([.. among]).Build();
        return new LanguageIdRule(detector, kept, [.. lang.Select(c => c.ToLowerInvariant())], minScore);
    }

    public double MinScore { get; }

    public string Name => "language_id";

    public string Description => allowed.Count == 0
        ? $"no language identified with confidence >= {MinScore.ToString(CultureInfo.InvariantCulture)}"
        : $"language not one of {string.Join(", ", allowedCodes)} with confidence >= {MinScore.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The most likely language (ISO 639-1, or "unknown" for text without letters) and its confidence.</summary>
    public (string Code, double Score) Identify(string text)
    {
        foreach (var (language, score) in detector.ComputeLanguageConfidenceValues(text))
            return score > 0 ? (Code(language), score) : ("unknown", 0);
        return ("unknown", 0);
    }

    public string? Reject(JsonElement record, string text)
    {
        var (code, score) = Identify(text);
        bool keep = score >= MinScore && (allowed.Count == 0 || allowedCodes.Contains(code));
        return keep ? null : $"{code} {Math.Round(score, 4).ToString(CultureInfo.InvariantCulture)}";
    }

    private static string Code(Language language) => LanguageInfo.IsoCode6391(language).ToString().ToLowerInvariant();

    private static Language Parse(string code, string parameter) =>
        Enum.TryParse<IsoCode6391>(code, ignoreCase: true, out var iso) && iso != IsoCode6391.None && code.Length == 2
            ? LanguageInfo.GetByIsoCode6391(iso)
            : throw new ArgumentException($"rule 'language_id': {parameter} '{code}' is not an ISO 639-1 code of a language Lingua knows (e.g. en, zh, fr, de)");
}
