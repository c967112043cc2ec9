using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Data.Building;

/// <summary>
/// A piece of a source document that the teacher writes questions about: its id (<c>SOURCE#N</c>, N counting the
/// document's chunks from 1), the document's path as given (relative to a folder argument), the headings above it
/// (outermost first; empty before the first heading and in plain text) and its text.
/// </summary>
public sealed record DocumentChunk(string Id, string Source, IReadOnlyList<string> HeadingPath, string Text);

/// <summary>Size bounds of a chunk, in characters (code points, so Chinese text without spaces is bounded as well).</summary>
public sealed record ChunkBounds(int MinChars = 200, int MaxChars = 2000)
{
    public void Check()
    {
        if (MinChars < 0 || MaxChars < 1 || MinChars > MaxChars)
            throw new ArgumentException($"chunk bounds must satisfy 0 <= --min-chars ({MinChars}) <= --max-chars ({MaxChars}) and --max-chars >= 1");
    }
}

/// <summary>
/// Splits Markdown and plain-text documents into chunks for <c>sharptune data build</c>. Markdown is cut at ATX
/// headings (<c># ...</c> to <c>###### ...</c>, not inside fenced code blocks), each section carrying its heading
/// path; a plain-text file is one section. A section longer than the upper bound is split at paragraph boundaries
/// (blank lines), a paragraph still too long at sentence ends (. ! ? followed by a space, or 。！？；), and a sentence
/// still too long at the bound itself, each piece filled greedily. A section shorter than the lower bound is merged
/// with the following sibling sections (same document, same parent heading) while the result stays within the upper
/// bound, else with the chunk before it if that is its sibling: the merged chunk keeps the first section's heading
/// path and each merged sibling's heading stays in the text as its first line, so no heading is lost.
/// </summary>
public static partial class DocumentChunker
{
    public static readonly string[] Extensions = [".md", ".markdown", ".txt"];

    /// <summary>The chunks of every document named: files, or folders searched recursively for .md, .markdown and .txt files (in ordinal path order).</summary>
    public static IReadOnlyList<DocumentChunk> Chunk(IReadOnlyList<string> paths, ChunkBounds bounds)
    {
        bounds.Check();
        var chunks = new List<DocumentChunk>();
        foreach (var (file, source) in Documents(paths))
            chunks.AddRange(ChunkDocument(source, File.ReadAllText(file), IsMarkdown(file), bounds));
        return chunks;
    }

    /// <summary>The chunks of one document's text.</summary>
    public static IReadOnlyList<DocumentChunk> ChunkDocument(string source, string text, bool markdown, ChunkBounds bounds)
    {
        var sections = markdown ? MarkdownSections(text) : [new Section([], null, text.Trim())];
        var pieces = new List<Section>();
        foreach (var section in sections.Where(s => s.Text.Length > 0))
            pieces.AddRange(Split(section, bounds));
        var merged = Merge(pieces, bounds);
        return merged.Select((s, i) => new DocumentChunk($"{source}#{i + 1}", source, s.Path, s.Text)).ToList();
    }

    private static bool IsMarkdown(string file) => !file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase);

    private static IEnumerable<(string File, string Source)> Documents(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new ArgumentException("no documents given: name Markdown or text files, or folders holding them");
        foreach (string path in paths)
        {
            if (File.Exists(path))
            {
                yield return (path, Path.GetFileName(path));
                continue;
            }
            if (!Directory.Exists(path)) throw new FileNotFoundException($"{path} does not exist", path);
            var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
                .Select(f => (File: f, Source: Path.GetRelativePath(path, f).Replace('\\', '/')))
                .OrderBy(f => f.Source, StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new ArgumentException($"{path} holds no .md, .markdown or .txt documents");
            foreach (var file in files) yield return file;
        }
    }

    /// <summary>A stretch of text under one heading path; <see cref="Heading"/> is its own heading line, null for a piece after the first.</summary>
    private sealed record Section(IReadOnlyList<string> Path, string? Heading, string Text);

    private static List<Section> MarkdownSections(string text)
    {
        var sections = new List<Section>();
        var path = new List<(int Level, string Title)>();
        string? heading = null;
        var body = new StringBuilder();
        string? fence = null;
        void Close() => sections.Add(new Section(path.Select(p => p.Title).ToList(), heading, body.ToString().Trim()));
        foreach (string line in text.ReplaceLineEndings("\n").Split('\n'))
        {
            string trimmed = line.TrimStart();
            if (fence is not null)
            {
                if (trimmed.StartsWith(fence, StringComparison.Ordinal)) fence = null;
            }
            else if (trimmed.StartsWith("```", StringComparison.Ordinal) || trimmed.StartsWith("~~~", StringComparison.Ordinal))
                fence = trimmed[..3];
            else if (AtxHeading().Match(line) is { Success: true } match)
            {
                Close();
                int level = match.Groups[1].Length;
                path.RemoveAll(p => p.Level >= level);
                path.Add((level, match.Groups[2].Value.Trim()));
                heading = line.Trim();
                body.Clear();
                continue;
            }
            body.Append(line).Append('\n');
        }
        Close();
        return sections;
    }

    private static IEnumerable<Section> Split(Section section, ChunkBounds bounds)
    {
        if (Length(section.Text) <= bounds.MaxChars) return [section];
        var units = new List<(string Text, string Separator)>();
        foreach (string paragraph in Paragraph().Split(section.Text).Select(p => p.Trim()).Where(p => p.Length > 0))
        {
            if (Length(paragraph) <= bounds.MaxChars)
            {
                units.Add((paragraph, "\n\n"));
                continue;
            }
            bool firstOfParagraph = true;
            foreach (string sentence in SentenceEnd().Split(paragraph).Where(s => s.Trim().Length > 0))
            {
                foreach (string part in HardCut(sentence.Trim(), bounds.MaxChars))
                {
                    units.Add((part, firstOfParagraph ? "\n\n" : Separator(part)));
                    firstOfParagraph = false;
                }
            }
        }
        var pieces = new List<Section>();
        var current = new StringBuilder();
        foreach (var (unit, separator) in units)
        {
            if (current.Length > 0 && Length(current.ToString()) + Length(separator) + Length(unit) > bounds.MaxChars)
            {
                pieces.Add(new Section(section.Path, pieces.Count == 0 ? section.Heading : null, current.ToString()));
                current.Clear();
            }
            if (current.Length > 0) current.Append(separator);
            current.Append(unit);
        }
        pieces.Add(new Section(section.Path, pieces.Count == 0 ? section.Heading : null, current.ToString()));
        return pieces;
    }

    /// <summary>Sentences of Chinese text follow each other without a space; others with one.</summary>
    private static string Separator(string sentence) => sentence.Length > 0 && sentence[0] >= '\u2E80' ? "" : " ";

    private static IEnumerable<string> HardCut(string text, int maxChars)
    {
        var runes = text.EnumerateRunes().ToList();
        for (int start = 0; start < runes.Count; start += maxChars)
            yield return string.Concat(runes.Skip(start).Take(maxChars).Select(r => r.ToString()));
    }

    private static List<Section> Merge(List<Section> pieces, ChunkBounds bounds)
    {
        var chunks = new List<Section>();
        for (int i = 0; i < pieces.Count; i++)
        {
            var current = pieces[i];
            while (Length(current.Text) < bounds.MinChars && i + 1 < pieces.Count && Siblings(current, pieces[i + 1])
                   && Length(Joined(current, pieces[i + 1])) <= bounds.MaxChars)
                current = current with { Text = Joined(current, pieces[++i]) };
            if (Length(current.Text) < bounds.MinChars && chunks.Count > 0 && Siblings(chunks[^1], current)
                && Length(Joined(chunks[^1], current)) <= bounds.MaxChars)
                chunks[^1] = chunks[^1] with { Text = Joined(chunks[^1], current) };
            else chunks.Add(current);
        }
        return chunks;
    }

    /// <summary>Two sections under the same parent heading (pieces of one split section are siblings too).</summary>
    private static bool Siblings(Section a, Section b) =>
        a.Path.Count == b.Path.Count && a.Path.Take(a.Path.Count - 1).SequenceEqual(b.Path.Take(b.Path.Count - 1));

    private static string Joined(Section first, Section second) =>
        first.Text + "\n\n" + (second.Heading is { } heading && !second.Path.SequenceEqual(first.Path) ? heading + "\n" : "") + second.Text;

    /// <summary>Characters as the bounds count them: code points.</summary>
    public static int Length(string text)
    {
        int surrogatePairs = 0;
        foreach (char c in text) if (char.IsHighSurrogate(c)) surrogatePairs++;
        return text.Length - surrogatePairs;
    }

    [GeneratedRegex(@"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")]
    private static partial Regex AtxHeading();

    [GeneratedRegex(@"\n[ \t]*\n")]
    private static partial Regex Paragraph();

    [GeneratedRegex(@"(?<=[.!?])\s+|(?<=[。！？；])")]
    private static partial Regex SentenceEnd();
}
