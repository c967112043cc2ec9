using System.Buffers;
using System.Numerics;
using System.Text;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// The quality measures of data-juicer's text filters (github.com/modelscope/data-juicer, data_juicer/ops/filter/),
/// reproduced from their definitions so that the same thresholds mean the same thing. Lengths count Unicode code
/// points, as Python's <c>len</c> does.
/// </summary>
public static class TextMeasures
{
    /// <summary>
    /// data-juicer's SPECIAL_CHARACTERS (data_juicer/ops/common/special_characters.py) apart from its white space and
    /// emoji, which <see cref="IsSpecial"/> tests by class: Python's string.punctuation and digits, and the other
    /// symbols it lists (some CJK characters such as 一 and 上 among them, kept so ratios match).
    /// </summary>
    private const string ListedSpecialCharacters =
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789"
        + "’“”–ー一▬…✦�£•€«»°·═×士＾˘⇓↓↑←→（）§″′´¿−±∈¢ø‚„½¼¾¹²³―⁃，ˌ¸‹›ʺˈʻ¦‐⠀‰‑≤≥‖"
        + "◆●■►▼▲▴∆▻¡★☆✱ːº。¯˜¥ɪ≈†上ン：∼⁄・♡✓⊕․．⋅÷１‟；،、¨ाাी्े◦˚"
        + "゜ʼ≖ʼ¤ッツシ℃√！【】‿∞➤～πه۩☛₨➩☻๑٪♥ıॽ《‘©﴿٬？▷Г♫∟™ª₪®「—❖」﴾》";

    private static readonly HashSet<int> s_listed = [.. ListedSpecialCharacters.EnumerateRunes().Select(r => r.Value)];

    /// <summary>
    /// Whether a code point is one of data-juicer's special characters: listed, white space (Python's
    /// string.whitespace and the Unicode spaces and U+FFFC it lists), or an emoji (approximated by the emoji blocks
    /// U+2600–U+27BF and U+1F000–U+1FAFF, where the emoji package's single-code-point emoji lie).
    /// </summary>
    public static bool IsSpecial(Rune rune)
    {
        int value = rune.Value;
        if (value < 0x80) return value is >= '\t' and <= '\r' or ' ' || !char.IsAsciiLetter((char)value) && s_listed.Contains(value);
        return s_listed.Contains(value) || Rune.GetUnicodeCategory(rune) == System.Globalization.UnicodeCategory.SpaceSeparator
            || value == 0xFFFC || value is >= 0x2600 and <= 0x27BF or >= 0x1F000 and <= 0x1FAFF;
    }

    /// <summary>Code points in the text (text_length_filter's <c>len(text)</c>).</summary>
    public static int Length(string text)
    {
        int surrogates = 0;
        foreach (char c in text) if (char.IsLowSurrogate(c)) surrogates++;
        return text.Length - surrogates;
    }

    /// <summary>special_characters_filter: special characters / code points; 0 for empty text.</summary>
    public static double SpecialCharacterRatio(string text) => Ratio(text, IsSpecial);

    /// <summary>alphanumeric_filter (tokenization off): letters and digits (Python's <c>isalnum</c>) / code points; 0 for empty text.</summary>
    public static double AlphanumericRatio(string text) =>
        Ratio(text, r => r.Value < 0x80 ? char.IsAsciiLetterOrDigit((char)r.Value) : Rune.IsLetterOrDigit(r) || Rune.GetUnicodeCategory(r) is System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber);

    private static double Ratio(string text, Func<Rune, bool> counts)
    {
        int total = 0, counted = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            total++;
            if (counts(rune)) counted++;
        }
        return total == 0 ? 0 : (double)counted / total;
    }

    /// <summary>
    /// character_repetition_filter: of the text's character n-grams (n = <paramref name="length"/>), the share of all
    /// occurrences taken by the most frequent ⌊√distinct⌋ n-grams, counting only n-grams that occur more than once.
    /// </summary>
    public static double CharacterRepetitionRatio(string text, int length)
    {
        int[]? starts = text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF') ? RuneStarts(text) : null;
        int points = starts is null ? text.Length : starts.Length - 1;
        int grams = points - length + 1;
        if (grams <= 0) return 0;
        ReadOnlySpan<char> Gram(int i) => starts is null ? text.AsSpan(i, length) : text.AsSpan(starts[i], starts[i + length] - starts[i]);

        // The n-grams counted in an open-addressing table of their rolling hashes, each slot naming the first
        // occurrence of an n-gram: no string or dictionary entry per n-gram. N-grams sharing a hash are compared by
        // their text, so a collision never merges two n-grams.
        int[] hashes = RollingHashes(points, length, starts is null ? i => text[i] : i => text[starts[i]]);
        int bits = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)grams * 2));
        int[] slots = ArrayPool<int>.Shared.Rent(1 << bits), counts = ArrayPool<int>.Shared.Rent(grams);
        Array.Clear(slots, 0, 1 << bits);
        for (int gram = 0; gram < grams; gram++)
        {
            // Fibonacci hashing spreads the polynomial hash's high-quality high bits over the table.
            for (int slot = (int)((uint)hashes[gram] * 0x9E3779B9u >> (32 - bits)); ; slot = (slot + 1) & ((1 << bits) - 1))
            {
                int first = slots[slot] - 1;
                if (first < 0)
                {
                    slots[slot] = gram + 1;
                    counts[gram] = 1;
                    break;
                }
                if (hashes[first] == hashes[gram] && Gram(first).SequenceEqual(Gram(gram)))
                {
                    counts[first]++;
                    break;
                }
            }
        }
        var repeated = new List<int>();
        int distinct = 0;
        for (int slot = 0; slot < 1 << bits; slot++)
        {
            if (slots[slot] == 0) continue;
            distinct++;
            if (counts[slots[slot] - 1] > 1) repeated.Add(counts[slots[slot] - 1]);
        }
        ArrayPool<int>.Shared.Return(slots);
        ArrayPool<int>.Shared.Return(counts);
        repeated.Sort((a, b) => b.CompareTo(a));
        int top = Math.Min((int)Math.Sqrt(distinct), repeated.Count);
        long share = 0;
        for (int i = 0; i < top; i++) share += repeated[i];
        return (double)share / grams;
    }

    /// <summary>
    /// word_repetition_filter (lang en, tokenization off): words split on white space, lower-cased, special characters
    /// stripped from both ends and empty ones dropped; of their n-grams (n = <paramref name="length"/>), the share of
    /// occurrences of n-grams that occur more than once.
    /// </summary>
    public static double WordRepetitionRatio(string text, int length)
    {
        // Lower-cased once (invariant lower-casing maps each code point alone, so the whole text lowers as its words
        // do), words kept as ranges of it rather than strings of their own.
        string lower = text.ToLowerInvariant();
        var words = new List<Range>();
        for (int i = 0; i < lower.Length;)
        {
            while (i < lower.Length && char.IsWhiteSpace(lower[i])) i++;
            int start = i;
            while (i < lower.Length && !char.IsWhiteSpace(lower[i])) i++;
            var word = StripSpecial(lower, start, i);
            if (word.End.Value > word.Start.Value) words.Add(word);
        }
        int grams = words.Count - length + 1;
        if (grams <= 0) return 0;
        var frequency = new Dictionary<int, int>(grams, new WordGrams(lower, words, length));
        for (int i = 0; i < grams; i++)
        {
            ref int count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(frequency, i, out _);
            count++;
        }
        int repeated = frequency.Values.Where(f => f > 1).Sum();
        return (double)repeated / grams;
    }

    /// <summary>The hash of every window of <paramref name="length"/> items among <paramref name="count"/>, each item given by <paramref name="item"/>.</summary>
    private static int[] RollingHashes(int count, int length, Func<int, int> item)
    {
        const uint Base = 1_000_003;
        uint power = 1;
        for (int k = 1; k < length; k++) power *= Base;
        var hashes = new int[Math.Max(0, count - length + 1)];
        uint hash = 0;
        for (int i = 0; i < count; i++)
        {
            if (i >= length) hash -= (uint)item(i - length) * power;
            hash = hash * Base + (uint)item(i);
            if (i >= length - 1) hashes[i - length + 1] = (int)hash;
        }
        return hashes;
    }

    /// <summary>Word n-grams named by the index of their first word, hashed by a rolling hash over the words' hashes.</summary>
    private sealed class WordGrams : IEqualityComparer<int>
    {
        private readonly string text;
        private readonly List<Range> words;
        private readonly int length;
        private readonly int[] hashes;

        public WordGrams(string text, List<Range> words, int length)
        {
            (this.text, this.words, this.length) = (text, words, length);
            int[] wordHashes = [.. words.Select(w => string.GetHashCode(text.AsSpan()[w]))];
            hashes = RollingHashes(words.Count, length, i => wordHashes[i]);
        }

        public bool Equals(int x, int y)
        {
            if (hashes[x] != hashes[y]) return false;
            for (int k = 0; k < length; k++)
                if (!text.AsSpan()[words[x + k]].SequenceEqual(text.AsSpan()[words[y + k]])) return false;
            return true;
        }

        public int GetHashCode(int i) => hashes[i];
    }

    /// <summary>Offsets of each code point, and the text's length at the end (for text holding surrogate pairs; otherwise each char is one).</summary>
    private static int[] RuneStarts(string text)
    {
        var starts = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
            if (!char.IsLowSurrogate(text[i]) || i == 0 || !char.IsHighSurrogate(text[i - 1])) starts.Add(i);
        starts.Add(text.Length);
        return [.. starts];
    }

    /// <summary>The range of <c>text[start..end]</c> left once special characters are stripped from both ends.</summary>
    private static Range StripSpecial(string text, int start, int end)
    {
        // Decode* read a lone surrogate as U+FFFD, which is special, rather than throwing.
        while (start < end && Rune.DecodeFromUtf16(text.AsSpan(start, end - start), out var first, out int firstLength) is var _ && IsSpecial(first))
            start += firstLength;
        while (end > start && Rune.DecodeLastFromUtf16(text.AsSpan(start, end - start), out var last, out int lastLength) is var _ && IsSpecial(last))
            end -= lastLength;
        return start..end;
    }
}
