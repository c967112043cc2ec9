using System.Buffers;
using System.Globalization;
using System.Text.RegularExpressions;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>
/// A regex that, like Oniguruma on UTF-8, treats every code point as one character. .NET matches UTF-16 code units,
/// so <c>\p{L}</c> would never match an astral letter written as a surrogate pair. Text containing surrogates is
/// therefore matched through a projection in which each astral code point becomes one BMP stand-in of the same
/// general category (the only property a translated pattern can test), and match offsets are mapped back.
/// </summary>
internal sealed class CodePointRegex
{
    /// <summary>
    /// The longest a backtracking match may run. Tokenizer patterns match a word in microseconds; only nested
    /// quantifiers that backtrack exponentially (a crafted tokenizer.json) come near it.
    /// </summary>
    internal static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(2);

    private readonly Regex _regex;
    private readonly char[] _standInByCategory;
    private readonly string _onigurumaPattern;
    private readonly string _source;

    /// <param name="source">Where the pattern comes from (the tokenizer file), for the timeout error.</param>
    public CodePointRegex(string onigurumaPattern, string source)
    {
        _regex = Compile(OnigurumaPattern.ToDotNet(onigurumaPattern));
        _standInByCategory = ChooseStandIns(onigurumaPattern);
        _onigurumaPattern = onigurumaPattern;
        _source = source;
    }

    /// <summary>
    /// The non-backtracking engine (time linear in the text, same matches) where the pattern allows it; patterns with
    /// lookarounds or atomic groups (possessive quantifiers), which it cannot run, backtrack under a match timeout.
    /// </summary>
    private static Regex Compile(string dotNetPattern)
    {
        try
        {
            return new Regex(dotNetPattern, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
        }
        catch (NotSupportedException)
        {
            return new Regex(dotNetPattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, MatchTimeout);
        }
    }

    /// <summary>Appends (start, length) of every non-overlapping match, in order, with offsets into <paramref name="text"/>.</summary>
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        try
        {
            FindCodePointMatches(text, matches);
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new InvalidDataException(
                $"{_source}: the pre_tokenizer regex {MessageText.Quote(_onigurumaPattern, maxChars: 200)} took over " +
                $"{MatchTimeout.TotalSeconds:0} s on one piece of text (catastrophic backtracking); this tokenizer cannot be used", e);
        }
    }

    private void FindCodePointMatches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch match in _regex.EnumerateMatches(text))
                matches.Add((match.Index, match.Length));
            return;
        }

        char[] projected = ArrayPool<char>.Shared.Rent(text.Length);
        int[] originalOffsets = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int length = 0;
            for (int i = 0; i < text.Length; i++)
            {
                originalOffsets[length] = i;
                char c = text[i];
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, text[i + 1]));
                    c = _standInByCategory[(int)category];
                    i++;
                }
                projected[length++] = c;
            }
            originalOffsets[length] = text.Length;

            foreach (ValueMatch match in _regex.EnumerateMatches(projected.AsSpan(0, length)))
            {
                int start = originalOffsets[match.Index];
                matches.Add((start, originalOffsets[match.Index + match.Length] - start));
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(projected);
            ArrayPool<int>.Shared.Return(originalOffsets);
        }
    }

    /// <summary>
    /// For each general category, the first BMP character of that category that the pattern cannot single out:
    /// it does not occur in the pattern, has no case mapping, and is whitespace only for separator categories.
    /// </summary>
    private static char[] ChooseStandIns(string pattern)
    {
        int categoryCount = Enum.GetValues<UnicodeCategory>().Length;
        var standIns = new char[categoryCount];
        var fallbacks = new char[categoryCount];
        for (int code = 0x80; code <= 0xFFFF; code++)
        {
            char c = (char)code;
            if (char.IsSurrogate(c))
                continue;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory(c);
            if (fallbacks[category] == '\0' && pattern.IndexOf(c) < 0)
                fallbacks[category] = c;
            bool isSeparator = CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.SpaceSeparator
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;
            if (standIns[category] == '\0' && pattern.IndexOf(c) < 0 && char.IsWhiteSpace(c) == isSeparator
                && char.ToUpperInvariant(c) == c && char.ToLowerInvariant(c) == c)
                standIns[category] = c;
        }
        for (int category = 0; category < categoryCount; category++)
        {
            if (standIns[category] == '\0')
                standIns[category] = fallbacks[category] != '\0' ? fallbacks[category] : '\uFFFD';
        }
        return standIns;
    }
}
