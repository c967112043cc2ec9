using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>
/// huggingface_hub's allow/ignore patterns (its filter_repo_objects): Python fnmatch over the whole path, so
/// <c>*</c> also crosses '/', <c>?</c> is one character, <c>[seq]</c>/<c>[!seq]</c> a set; a pattern ending in
/// '/' means everything under that folder. Case-sensitive, as fnmatch is on POSIX.
/// </summary>
public static class HubGlob
{
    /// <summary>The paths that match an include pattern (all when there is none) and no exclude pattern.</summary>
    public static IEnumerable<string> Filter(IEnumerable<string> paths, IReadOnlyList<string> include, IReadOnlyList<string> exclude)
    {
        var included = include.Select(ToRegex).ToList();
        var excluded = exclude.Select(ToRegex).ToList();
        return paths.Where(p => (included.Count == 0 || included.Any(r => r.IsMatch(p))) && !excluded.Any(r => r.IsMatch(p)));
    }

    private static Regex ToRegex(string pattern)
    {
        if (pattern.EndsWith('/')) pattern += "*";
        var regex = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            int close = c == '[' ? pattern.IndexOf(']', i + 2 <= pattern.Length ? i + 2 : i + 1) : -1;
            if (c == '*') regex.Append("(?s:.*)");
            else if (c == '?') regex.Append("(?s:.)");
            else if (c == '[' && close > 0)
            {
                string set = pattern[(i + 1)..close];
                bool negate = set.StartsWith('!');
                if (negate) set = set[1..];
                regex.Append('[').Append(negate ? "^" : "").Append(set.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("[", "\\[", StringComparison.Ordinal)).Append(']');
                i = close;
            }
            else regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append("\\z").ToString(), RegexOptions.CultureInvariant);
    }
}
