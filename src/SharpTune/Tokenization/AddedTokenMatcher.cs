using System.Buffers;
using System.Globalization;

namespace SharpTune.Tokenization;

/// <summary>
/// Finds added tokens in text the way HF's <c>AddedVocabulary::find_matches</c> does: leftmost-longest,
/// non-overlapping occurrences of the contents, then the single_word / lstrip / rstrip rules.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly (string Pattern, AddedToken Token)[] _candidatesLongestFirst;
    private readonly SearchValues<char> _firstCharacters;

    /// <param name="patterns">Each token with the text it is searched as (its content, normalised when it matches normalised text).</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        _candidatesLongestFirst = patterns.Where(p => p.Pattern.Length > 0)
            .OrderByDescending(p => p.Pattern.Length).ToArray();
        _firstCharacters = SearchValues.Create(_candidatesLongestFirst.Select(p => p.Pattern[0]).Distinct().ToArray());
    }

    public bool IsEmpty => _candidatesLongestFirst.Length == 0;

    /// <summary>
    /// Appends the splits covering <paramref name="text"/>: (start, length, token id) for added tokens and
    /// id -1 for the text between them. Mirrors HF arithmetic exactly, including that the search resumes at the
    /// end of the matched content even when rstrip extended the split over following whitespace.
    /// </summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length, int Id)> splits)
    {
        int previousEnd = 0;
        int searchFrom = 0;
        while (searchFrom < text.Length)
        {
            int found = text[searchFrom..].IndexOfAny(_firstCharacters);
            if (found < 0)
                break;
            int start = searchFrom + found;
            AddedToken? token = null;
            int stop = start;
            foreach (var (pattern, candidate) in _candidatesLongestFirst)
            {
                if (text[start..].StartsWith(pattern, StringComparison.Ordinal))
                {
                    token = candidate;
                    stop = start + pattern.Length;
                    break;
                }
            }
            if (token is null)
            {
                searchFrom = start + 1;
                continue;
            }

            searchFrom = stop;
            if (token.SingleWord && (EndsWithWordCharacter(text[..start]) || StartsWithWordCharacter(text[stop..])))
                continue;
            if (token.LeftStrip)
                start = Math.Max(StartOfTrailingWhitespace(text[..start]), previousEnd);
            if (token.RightStrip)
                stop += LengthOfLeadingWhitespace(text[stop..]);
            if (previousEnd < start)
                splits.Add((previousEnd, start - previousEnd, -1));
            splits.Add((start, stop - start, token.Id));
            previousEnd = stop;
        }
        if (previousEnd < text.Length)
            splits.Add((previousEnd, text.Length - previousEnd, -1));
    }

    private static bool EndsWithWordCharacter(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
            return false;
        int last = text.Length - 1;
        int codePoint = char.IsLowSurrogate(text[last]) && last > 0 && char.IsHighSurrogate(text[last - 1])
            ? char.ConvertToUtf32(text[last - 1], text[last])
            : text[last];
        return IsWordCharacter(codePoint);
    }

    private static bool StartsWithWordCharacter(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
            return false;
        int codePoint = char.IsHighSurrogate(text[0]) && text.Length > 1 && char.IsLowSurrogate(text[1])
            ? char.ConvertToUtf32(text[0], text[1])
            : text[0];
        return IsWordCharacter(codePoint);
    }

    /// <summary>Rust regex's Unicode \w: alphabetic (letters, letter numbers, most marks), marks, Nd, Pc, joiners.</summary>
    private static bool IsWordCharacter(int codePoint)
    {
        if (codePoint is 0x200C or 0x200D)
            return true;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) is
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.LetterNumber
            or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;
    }

    private static int StartOfTrailingWhitespace(ReadOnlySpan<char> text)
    {
        int start = text.Length;
        while (start > 0 && char.IsWhiteSpace(text[start - 1]))
            start--;
        return start;
    }

    private static int LengthOfLeadingWhitespace(ReadOnlySpan<char> text)
    {
        int length = 0;
        while (length < text.Length && char.IsWhiteSpace(text[length]))
            length++;
        return length;
    }
}
