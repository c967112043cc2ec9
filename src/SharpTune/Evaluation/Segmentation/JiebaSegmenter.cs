namespace SharpTune.Evaluation.Segmentation;

/// <summary>
/// Chinese word segmentation as Python jieba 0.42.1's default <c>jieba.cut(text)</c> does it (accurate mode, HMM
/// on): the text is split into runs of "Han" characters (CJK U+4E00..U+9FD5, ASCII letters and digits and
/// <c>+#&amp;._%-</c>) and other text; other text yields each "\r\n", each whitespace character and each other code
/// point alone; a Han run is cut along the maximum-probability route through the dictionary's DAG, and runs of
/// single characters the route leaves unjoined go to the HMM (<see cref="JiebaHmm"/>) unless the run is itself a word.
/// The dictionary and HMM tables are jieba's own, so the output equals Python jieba's (tested against it on
/// tests/fixtures/metrics/jieba_reference.jsonl). Thread-safe: <see cref="Cut"/> keeps no state between calls.
/// </summary>
public sealed class JiebaSegmenter
{
    static readonly Lazy<JiebaSegmenter> Shared = new(() => new JiebaSegmenter(JiebaDictionary.LoadEmbedded(), JiebaHmm.LoadEmbedded()));

    readonly JiebaDictionary _dictionary;
    readonly JiebaHmm _hmm;

    public JiebaSegmenter(JiebaDictionary dictionary, JiebaHmm hmm)
    {
        _dictionary = dictionary;
        _hmm = hmm;
    }

    /// <summary>The segmenter over jieba's bundled dictionary, loaded once on first use (about a second).</summary>
    public static JiebaSegmenter Default => Shared.Value;

    /// <summary>finalseg's Han class.</summary>
    internal static bool IsHan(char c) => c >= '\u4E00' && c <= '\u9FD5';

    // re_han_default: ([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)
    static bool IsDefaultHan(char c) =>
        IsHan(c) || char.IsAsciiLetterOrDigit(c) || c is '+' or '#' or '&' or '.' or '_' or '%' or '-';

    public List<string> Cut(string text)
    {
        var words = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int start = i;
            if (IsDefaultHan(text[i]))
            {
                while (i < text.Length && IsDefaultHan(text[i])) i++;
                CutBlock(text.Substring(start, i - start), words);
                continue;
            }
            while (i < text.Length && !IsDefaultHan(text[i])) i++;
            CutOther(text, start, i, words);
        }
        return words;
    }

    // re_skip_default = (\r\n|\s): separators come out whole, everything else one code point at a time.
    static void CutOther(string text, int start, int end, List<string> words)
    {
        int i = start;
        while (i < end)
        {
            if (text[i] == '\r' && i + 1 < end && text[i + 1] == '\n') { words.Add("\r\n"); i += 2; }
            else if (char.IsHighSurrogate(text[i]) && i + 1 < end && char.IsLowSurrogate(text[i + 1])) { words.Add(text.Substring(i, 2)); i += 2; }
            else { words.Add(text.Substring(i, 1)); i++; }
        }
    }

    // __cut_DAG: route through the DAG, buffering single characters and handing unknown multi-character buffers to the HMM.
    void CutBlock(string block, List<string> words)
    {
        int[] routeEnd = Route(block);
        int x = 0;
        int bufferStart = -1;
        while (x < block.Length)
        {
            int y = routeEnd[x] + 1;
            if (y - x == 1)
            {
                if (bufferStart < 0) bufferStart = x;
            }
            else
            {
                if (bufferStart >= 0) FlushBuffer(block, bufferStart, x, words);
                bufferStart = -1;
                words.Add(block.Substring(x, y - x));
            }
            x = y;
        }
        if (bufferStart >= 0) FlushBuffer(block, bufferStart, block.Length, words);
    }

    void FlushBuffer(string block, int start, int end, List<string> words)
    {
        if (end - start == 1) { words.Add(block.Substring(start, 1)); return; }
        if (_dictionary.Frequency(block.AsSpan(start, end - start)) == 0)
        {
            _hmm.Cut(block.Substring(start, end - start), words);
            return;
        }
        for (int i = start; i < end; i++) words.Add(block.Substring(i, 1));
    }

    // get_DAG + calc: for each start, the ends of dictionary words beginning there (or itself alone), then the
    // best route from the right: log(freq or 1) - log(total) + best(rest), ties going to the longer word.
    int[] Route(string block)
    {
        int n = block.Length;
        var ends = new List<int>[n];
        for (int k = 0; k < n; k++)
        {
            var list = new List<int>(4);
            int i = k;
            while (i < n && _dictionary.ContainsPrefix(block.AsSpan(k, i + 1 - k)))
            {
                if (_dictionary.Frequency(block.AsSpan(k, i + 1 - k)) > 0) list.Add(i);
                i++;
            }
            if (list.Count == 0) list.Add(k);
            ends[k] = list;
        }
        var score = new double[n + 1];
        var routeEnd = new int[n + 1];
        double logTotal = _dictionary.LogTotal;
        for (int idx = n - 1; idx >= 0; idx--)
        {
            double best = double.NegativeInfinity;
            int bestEnd = -1;
            foreach (int x in ends[idx])
            {
                long f = _dictionary.Frequency(block.AsSpan(idx, x + 1 - idx));
                double p = Math.Log(f == 0 ? 1 : f) - logTotal + score[x + 1];
                if (bestEnd < 0 || p > best || (p == best && x > bestEnd)) { best = p; bestEnd = x; }
            }
            score[idx] = best;
            routeEnd[idx] = bestEnd;
        }
        return routeEnd;
    }
}
