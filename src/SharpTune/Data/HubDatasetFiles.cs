using System.Text.RegularExpressions;
using SharpTune.Hub;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>
/// The data files of an <c>hf_hub_url</c> or <c>ms_hub_url</c> dataset, as Hugging Face's <c>datasets</c> finds them
/// in a repository without a loading script or <c>configs</c> metadata (modelscope's MsDataset.load resolves a hub
/// dataset's files through the same datasets code): the repository's json, jsonl, parquet and csv files under
/// <c>folder</c>/<c>subset</c> are downloaded into the cache of the source's hub (<see cref="HubDownload"/>, which
/// hands ModelScope to <see cref="ModelScopeDownload"/>; offline runs read them from there), then split by datasets' default patterns (its <c>get_data_patterns</c>): first shards named
/// <c>data/SPLIT-00000-of-00001.EXT</c>; else train/validation/test keywords in folder names; else in file names;
/// else every file is train. As datasets picks one packaged loader, a split's files are those of its most common
/// format.
/// </summary>
internal static partial class HubDatasetFiles
{
    /// <summary>Each data file extension and the datasets loader that reads it.</summary>
    private static readonly Dictionary<string, string> Loaders = new(StringComparer.Ordinal)
    {
        [".json"] = "json", [".jsonl"] = "json", [".parquet"] = "parquet", [".csv"] = "csv",
    };

    /// <summary>datasets' FILES_TO_IGNORE: repository metadata that is never data.</summary>
    private static readonly HashSet<string> IgnoredNames = new(StringComparer.Ordinal)
    {
        "README.md", "config.json", "dataset_info.json", "dataset_infos.json", "dummy_data.zip", "dataset_dict.json",
    };

    /// <summary>datasets' SPLIT_KEYWORDS, in its order of splits.</summary>
    private static readonly (string Split, string[] Keywords)[] SplitKeywords =
    [
        ("train", ["train", "training"]),
        ("validation", ["validation", "valid", "dev", "val"]),
        ("test", ["test", "testing", "eval", "evaluation"]),
    ];

    /// <summary>datasets' NON_WORDS_CHARS, the characters that may stand around a split keyword.</summary>
    private const string Separator = "[-._ 0-9]";

    /// <summary>The files of the entry's split as (full path, name for messages: REPO/PATH).</summary>
    /// <exception cref="InvalidDataException">The download fails, or the repository has no data files or not the split.</exception>
    public static IReadOnlyList<(string Path, string Display)> Resolve(DatasetEntry entry, HubDatasetSource source, HubSettings settings, TextWriter log)
    {
        string prefix = string.Join('/', new[] { source.Folder, source.Subset }.OfType<string>());
        string under = prefix.Length == 0 ? "" : prefix + "/";
        string snapshot;
        try
        {
            snapshot = HubDownload.Snapshot(settings, "dataset", source.RepoId, "main", Loaders.Keys.Select(ext => under + "*" + ext).ToList(), [], log);
        }
        catch (HubException e)
        {
            throw new InvalidDataException($"{entry.Where}: {e.Message}", e);
        }

        string root = Path.Combine(snapshot, prefix);
        var files = Directory.Exists(root)
            ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'))
                .Where(IsDataFile).Order(StringComparer.Ordinal).ToList()
            : [];
        if (files.Count == 0)
            throw new InvalidDataException($"{entry.Where}: {source.RepoId}{(prefix.Length == 0 ? "" : $" folder '{prefix}'")} holds no json, jsonl, parquet or csv file");
        var splits = Splits(files);
        if (!splits.TryGetValue(entry.Split, out var splitFiles))
            throw new InvalidDataException(
                $"{entry.Where}: split {MessageText.Quote(entry.Split)} is not in {source.RepoId}{(prefix.Length == 0 ? "" : $" folder '{prefix}'")} (its files hold: {string.Join(", ", splits.Keys)})");
        // Counted in path order, ties going to the format seen first, as datasets' Counter.most_common does.
        string loader = splitFiles.GroupBy(f => Loaders[Path.GetExtension(f)]).OrderByDescending(g => g.Count()).First().Key;
        return splitFiles.Where(f => Loaders[Path.GetExtension(f)] == loader)
            .Select(f => (Path.Combine(root, f), $"{source.RepoId}/{under}{f}")).ToList();
    }

    /// <summary>A json/jsonl/parquet/csv file outside hidden folders (datasets skips names starting with '.' or '__') and not repository metadata.</summary>
    private static bool IsDataFile(string path)
    {
        string[] parts = path.Split('/');
        return Loaders.ContainsKey(Path.GetExtension(path)) && !IgnoredNames.Contains(parts[^1])
            && !parts.Any(part => part.StartsWith('.') || part.StartsWith("__", StringComparison.Ordinal));
    }

    /// <summary>Split name → its files, by the first of datasets' default pattern groups that any file matches.</summary>
    internal static Dictionary<string, List<string>> Splits(IReadOnlyList<string> files)
    {
        var sharded = files.Select(f => (File: f, Match: ShardedSplit().Match(f))).Where(m => m.Match.Success).ToList();
        if (sharded.Count > 0)
        {
            string[] known = [.. SplitKeywords.Select(k => k.Split)];
            return sharded.GroupBy(m => m.Match.Groups["split"].Value)
                .OrderBy(g => Array.IndexOf(known, g.Key) is var i && i >= 0 ? i : known.Length).ThenBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Select(m => m.File).ToList(), StringComparer.Ordinal);
        }
        foreach (var inFolderName in new[] { true, false })
        {
            var splits = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (var (split, keywords) in SplitKeywords)
            {
                var patterns = keywords.SelectMany(k => KeywordPatterns(k, inFolderName)).ToList();
                var matched = files.Where(f => patterns.Any(p => p.IsMatch(f))).ToList();
                if (matched.Count > 0) splits[split] = matched;
            }
            if (splits.Count > 0) return splits;
        }
        return new Dictionary<string, List<string>>(StringComparer.Ordinal) { ["train"] = [.. files] };
    }

    /// <summary>
    /// datasets' KEYWORDS_IN_DIR_NAME_BASE_PATTERNS (<c>**/{keyword}/**</c>, <c>**/{keyword}[sep]*/**</c>,
    /// <c>**/*[sep]{keyword}/**</c>, <c>**/*[sep]{keyword}[sep]*/**</c>) or KEYWORDS_IN_FILENAME_BASE_PATTERNS
    /// (<c>**/{keyword}[sep]*</c>, <c>**/*[sep]{keyword}[sep]*</c>) as fsspec globs match them: <c>**/</c> is any
    /// number of folders, <c>*</c> stays within one name.
    /// </summary>
    private static IEnumerable<Regex> KeywordPatterns(string keyword, bool inFolderName)
    {
        string k = Regex.Escape(keyword);
        string[] names = inFolderName
            ? [$"{k}", $"{k}{Separator}[^/]*", $"[^/]*{Separator}{k}", $"[^/]*{Separator}{k}{Separator}[^/]*"]
            : [$"{k}{Separator}[^/]*", $"[^/]*{Separator}{k}{Separator}[^/]*"];
        string tail = inFolderName ? "/.+" : "";
        return names.Select(name => new Regex($"^(?:.*/)?{name}{tail}\\z", RegexOptions.CultureInvariant));
    }

    /// <summary>datasets' SPLIT_PATTERN_SHARDED, <c>data/{split}-[0-9]{5}-of-[0-9]{5}*.*</c>, with its split name rule.</summary>
    [GeneratedRegex(@"^data/(?<split>\w+(?:\.\w+)*)-[0-9]{5}-of-[0-9]{5}[^/]*\.[^/]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex ShardedSplit();
}
