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

    public static string Normalize(string text)
    {
        int first = 0;
        while (first < text.Length && text[first] < FirstDecomposable) first++;
        if (first == text.Length) return text;
        var replaced = new StringBuilder(text.Length + 8).Append(text, 0, first);
        foreach (var rune in text.AsSpan(first).EnumerateRunes())
        {
            if (rune.Value >= FirstDecomposable && Decompositions.TryGetValue(rune.Value, out int[]? sequence))
                foreach (int codePoint in sequence) replaced.Append(char.ConvertFromUtf32(codePoint));
            else
                replaced.Append(rune.ToString());
        }
        return CanonicalComposition.Normalize(replaced.ToString());
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
