using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// Unicode Normalization Form KC (UAX #15) from <see cref="UnicodeCompatibilityData"/>: every code point with a
/// compatibility decomposition is replaced by its full NFKD, then the text is put in NFC by
/// <see cref="CanonicalComposition"/>. That equals NFKC because each replacement is already fully decomposed, so NFC's
/// own decomposition and canonical ordering of the result give exactly NFKD of the text, which NFC then composes.
/// string.Normalize cannot do this: under InvariantGlobalization it returns the text unchanged.
/// </summary>
internal static class CompatibilityComposition
{
    /// <summary>Every code point with a compatibility decomposition is at or above U+00A0 (NO-BREAK SPACE).</summary>
    private const int FirstDecomposable = 0xA0;

    private static readonly Dictionary<int, int[]> Decompositions = ReadDecompositions();

    /// <summary>One bit per BMP code point: set when it has a compatibility decomposition (the fast test for ASCII and CJK text).</summary>
    private static readonly ulong[] DecomposableBmp = Decompositions.Keys.Where(c => c < 0x10000)
        .Aggregate(new ulong[0x10000 / 64], (bits, c) => { bits[c >> 6] |= 1UL << c; return bits; });

    public static string Normalize(string text)
    {
        int first = 0;
        while (first < text.Length && !HasDecomposition(text, first)) first++;
        if (first == text.Length) return CanonicalComposition.Normalize(text);
        var replaced = new StringBuilder(text.Length + 8).Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            if (!HasDecomposition(text, i))
            {
                replaced.Append(text[i]);
                continue;
            }
            var rune = Rune.GetRuneAt(text, i);
            foreach (int codePoint in Decompositions[rune.Value])
            {
                if (codePoint < 0x10000) replaced.Append((char)codePoint);
                else replaced.Append(char.ConvertFromUtf32(codePoint));
            }
            i += rune.Utf16SequenceLength - 1;
        }
        return CanonicalComposition.Normalize(replaced.ToString());
    }

    /// <summary>Whether the code point starting at text[i] has a compatibility decomposition (false for a lone or trailing surrogate).</summary>
    private static bool HasDecomposition(string text, int i)
    {
        char c = text[i];
        if (c < FirstDecomposable) return false;
        if (!char.IsSurrogate(c)) return (DecomposableBmp[c >> 6] & (1UL << c)) != 0;
        return char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])
            && Decompositions.ContainsKey(char.ConvertToUtf32(c, text[i + 1]));
    }

    private static Dictionary<int, int[]> ReadDecompositions()
    {
        ReadOnlySpan<int> data = UnicodeCompatibilityData.CompatibilityDecompositions;
        var decompositions = new Dictionary<int, int[]>(4096);
        for (int i = 0; i < data.Length; i += 2 + data[i + 1])
            decompositions[data[i]] = data.Slice(i + 2, data[i + 1]).ToArray();
        return decompositions;
    }
}
