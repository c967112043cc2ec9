namespace SharpTune.Tokenization;

/// <summary>
/// Unicode Normalization Form C (UAX #15), implemented from the UCD tables in <see cref="UnicodeNormalizationData"/>.
/// </summary>
internal static class CanonicalComposition
{
    private const int HangulSyllableBase = 0xAC00;
    private const int HangulLeadBase = 0x1100;
    private const int HangulVowelBase = 0x1161;
    private const int HangulTrailBase = 0x11A7;
    private const int HangulLeadCount = 19;
    private const int HangulVowelCount = 21;
    private const int HangulTrailCount = 28;
    private const int HangulSyllablesPerLead = HangulVowelCount * HangulTrailCount;
    private const int HangulSyllableCount = HangulLeadCount * HangulSyllablesPerLead;

    private const int CodePointCount = 0x110000;

    /// <summary>Combining class per code point, stored in 256-entry pages; a null page is all zero.</summary>
    private static readonly byte[]?[] CombiningClassPages = BuildCombiningClassPages();
    private static readonly Dictionary<int, (int First, int Second)> Decompositions = new();
    private static readonly Dictionary<long, int> PrimaryComposites = new();

    /// <summary>
    /// Bit set of code points that may make a string change under NFC: non-starters, characters that never
    /// survive NFC (NFC_QC=No) and characters that can combine with a preceding one (NFC_QC=Maybe).
    /// </summary>
    private static readonly ulong[] MayChange = new ulong[CodePointCount / 64];

    static CanonicalComposition()
    {
        var excluded = new HashSet<int>();
        foreach (int codePoint in UnicodeNormalizationData.CompositionExclusions)
            excluded.Add(codePoint);

        ReadOnlySpan<int> decompositions = UnicodeNormalizationData.CanonicalDecompositions;
        for (int i = 0; i < decompositions.Length; i += 3)
        {
            int codePoint = decompositions[i], first = decompositions[i + 1], second = decompositions[i + 2];
            Decompositions[codePoint] = (first, second);
            if (second == 0 || excluded.Contains(codePoint))
            {
                MarkMayChange(codePoint);
            }
            else
            {
                PrimaryComposites[PairKey(first, second)] = codePoint;
                MarkMayChange(second);
            }
        }

        ReadOnlySpan<int> ranges = UnicodeNormalizationData.CombiningClassRanges;
        for (int i = 0; i < ranges.Length; i += 3)
        {
            for (int codePoint = ranges[i]; codePoint <= ranges[i + 1]; codePoint++)
                MarkMayChange(codePoint);
        }
        for (int i = 0; i < HangulVowelCount; i++)
            MarkMayChange(HangulVowelBase + i);
        for (int i = 1; i < HangulTrailCount; i++)
            MarkMayChange(HangulTrailBase + i);
    }

    /// <summary>True when NFC would return the text unchanged (checked conservatively, never wrongly true).</summary>
    public static bool IsNormalized(ReadOnlySpan<char> text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            int codePoint = text[i];
            if (codePoint < 0x300)
                continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                codePoint = char.ConvertToUtf32(text[i], text[i + 1]);
                i++;
            }
            if ((MayChange[codePoint >> 6] & (1UL << (codePoint & 63))) != 0)
                return false;
        }
        return true;
    }

    public static string Normalize(string text) => IsNormalized(text) ? text : Compose(text);

    private static string Compose(ReadOnlySpan<char> text)
    {
        var codePoints = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length; i++)
        {
            int codePoint = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                codePoint = char.ConvertToUtf32(text[i], text[i + 1]);
                i++;
            }
            AppendDecomposition(codePoint, codePoints);
        }

        ApplyCanonicalOrdering(codePoints);
        int length = ComposeInPlace(codePoints);

        var builder = new System.Text.StringBuilder(text.Length);
        for (int i = 0; i < length; i++)
        {
            int codePoint = codePoints[i];
            if (codePoint < 0x10000)
                builder.Append((char)codePoint);
            else
                builder.Append(char.ConvertFromUtf32(codePoint));
        }
        return builder.ToString();
    }

    private static void AppendDecomposition(int codePoint, List<int> output)
    {
        int syllableIndex = codePoint - HangulSyllableBase;
        if ((uint)syllableIndex < HangulSyllableCount)
        {
            output.Add(HangulLeadBase + syllableIndex / HangulSyllablesPerLead);
            output.Add(HangulVowelBase + syllableIndex % HangulSyllablesPerLead / HangulTrailCount);
            int trail = syllableIndex % HangulTrailCount;
            if (trail != 0)
                output.Add(HangulTrailBase + trail);
            return;
        }
        if (Decompositions.TryGetValue(codePoint, out var parts))
        {
            AppendDecomposition(parts.First, output);
            if (parts.Second != 0)
                AppendDecomposition(parts.Second, output);
            return;
        }
        output.Add(codePoint);
    }

    /// <summary>Stable sort of every run of non-starters by combining class (insertion sort: runs are short).</summary>
    private static void ApplyCanonicalOrdering(List<int> codePoints)
    {
        for (int i = 1; i < codePoints.Count; i++)
        {
            int current = codePoints[i];
            int currentClass = GetCombiningClass(current);
            if (currentClass == 0)
                continue;
            int j = i - 1;
            while (j >= 0)
            {
                int previousClass = GetCombiningClass(codePoints[j]);
                if (previousClass <= currentClass)
                    break;
                codePoints[j + 1] = codePoints[j];
                j--;
            }
            codePoints[j + 1] = current;
        }
    }

    /// <summary>Canonical composition algorithm of UAX #15; returns the composed length.</summary>
    private static int ComposeInPlace(List<int> codePoints)
    {
        if (codePoints.Count == 0)
            return 0;
        int starterIndex = 0;
        int starter = codePoints[0];
        // A leading non-starter has no starter to combine with, so nothing may compose onto it.
        int lastClass = GetCombiningClass(starter) == 0 ? 0 : 256;
        int written = 1;
        for (int i = 1; i < codePoints.Count; i++)
        {
            int codePoint = codePoints[i];
            int combiningClass = GetCombiningClass(codePoint);
            int composite = lastClass < combiningClass || lastClass == 0 ? ComposePair(starter, codePoint) : -1;
            if (composite >= 0)
            {
                codePoints[starterIndex] = composite;
                starter = composite;
                continue;
            }
            if (combiningClass == 0)
            {
                starterIndex = written;
                starter = codePoint;
            }
            lastClass = combiningClass;
            codePoints[written++] = codePoint;
        }
        return written;
    }

    private static int ComposePair(int first, int second)
    {
        int leadIndex = first - HangulLeadBase;
        int vowelIndex = second - HangulVowelBase;
        if ((uint)leadIndex < HangulLeadCount && (uint)vowelIndex < HangulVowelCount)
            return HangulSyllableBase + (leadIndex * HangulVowelCount + vowelIndex) * HangulTrailCount;

        int syllableIndex = first - HangulSyllableBase;
        int trailIndex = second - HangulTrailBase;
        if ((uint)syllableIndex < HangulSyllableCount && syllableIndex % HangulTrailCount == 0
            && trailIndex > 0 && trailIndex < HangulTrailCount)
            return first + trailIndex;

        return PrimaryComposites.TryGetValue(PairKey(first, second), out int composite) ? composite : -1;
    }

    private static int GetCombiningClass(int codePoint)
    {
        byte[]? page = CombiningClassPages[codePoint >> 8];
        return page is null ? 0 : page[codePoint & 0xFF];
    }

    private static byte[]?[] BuildCombiningClassPages()
    {
        var pages = new byte[]?[CodePointCount >> 8];
        ReadOnlySpan<int> ranges = UnicodeNormalizationData.CombiningClassRanges;
        for (int i = 0; i < ranges.Length; i += 3)
        {
            for (int codePoint = ranges[i]; codePoint <= ranges[i + 1]; codePoint++)
                (pages[codePoint >> 8] ??= new byte[256])[codePoint & 0xFF] = (byte)ranges[i + 2];
        }
        return pages;
    }

    private static void MarkMayChange(int codePoint) => MayChange[codePoint >> 6] |= 1UL << (codePoint & 63);

    private static long PairKey(int first, int second) => ((long)first << 21) | (uint)second;
}
