using System.Text.RegularExpressions;
using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>docs/config.md's "Every key" section lists exactly the registry's keys (Hparams/ConfigKeys), each under its status.</summary>
public sealed partial class ConfigDocTests
{
    private const string Heading = "## Every key";

    /// <summary>The doc's paragraph label for each status, aliases apart (an alias is a supported old spelling).</summary>
    private static string Label(ConfigKey key) => key.AliasOf is not null ? "Aliases" : key.Status switch
    {
        KeyStatus.Supported => "Supported",
        KeyStatus.Ignored => "Ignored",
        _ => "Unsupported",
    };

    /// <summary>Key → label as the section lists them: a paragraph "**Label** (...): `key`, `alias` (→ `key`), ...".</summary>
    private static Dictionary<string, string> Documented(string markdown)
    {
        int start = markdown.IndexOf("\n" + Heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"docs/config.md has no '{Heading}' section");
        int end = markdown.IndexOf("\n## ", start + Heading.Length + 2, StringComparison.Ordinal);
        string section = end < 0 ? markdown[start..] : markdown[start..end];
        var listed = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string paragraph in section.Split("\n\n"))
        {
            var label = LabelPattern().Match(paragraph);
            if (!label.Success) continue;
            string keys = paragraph[(paragraph.IndexOf("):", StringComparison.Ordinal) + 2)..];
            foreach (Match key in KeyPattern().Matches(keys))
                Assert.True(listed.TryAdd(key.Groups[1].Value, label.Groups[1].Value), $"docs/config.md lists '{key.Groups[1].Value}' twice");
        }
        return listed;
    }

    [Fact]
    public void TheDocListsEveryRegisteredKeyUnderItsStatus()
    {
        var documented = Documented(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "config.md")));
        var problems = new List<string>();
        foreach (var key in ConfigKeys.All.Values.OrderBy(k => k.Name, StringComparer.Ordinal))
        {
            if (!documented.TryGetValue(key.Name, out string? label)) problems.Add($"'{key.Name}' is in the registry but not in docs/config.md ({Label(key)})");
            else if (label != Label(key)) problems.Add($"'{key.Name}' is listed as {label} in docs/config.md but is {Label(key)} in the registry");
        }
        foreach (string name in documented.Keys.Where(name => !ConfigKeys.All.ContainsKey(name)).Order(StringComparer.Ordinal))
            problems.Add($"'{name}' is documented in docs/config.md but not in the registry");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void TheSectionParserReadsLabelsKeysAndAliases()
    {
        var listed = Documented("""
            # doc
            `not_a_key` in prose before

            ## Every key
            Intro mentioning `intro_key`.

            **Supported** (read): `a_key`, `b_key`

            **Aliases** (old spellings): `old_name` (→ `a_key`)

            ## Next
            **Ignored** (later): `c_key`
            """);
        Assert.Equal(new Dictionary<string, string> { ["a_key"] = "Supported", ["b_key"] = "Supported", ["old_name"] = "Aliases" }, listed);
    }

    [GeneratedRegex(@"^\*\*(Supported|Aliases|Ignored|Unsupported)\*\*")]
    private static partial Regex LabelPattern();

    // A key, not the canonical name after an alias's arrow.
    [GeneratedRegex(@"(?<!→ )`([a-z0-9_.]+)`")]
    private static partial Regex KeyPattern();
}
