using System.Text.RegularExpressions;

namespace SharpTune.Evaluation.Metrics;

/// <summary>F-scores of ROUGE-1, ROUGE-2 and ROUGE-L for one pair, in 0..1.</summary>
public readonly record struct RougeScores(double Rouge1, double Rouge2, double RougeL);

/// <summary>
/// The <c>rouge_chinese</c> package's <c>Rouge().get_scores(hyp, ref)</c> (defaults: exclusive n-grams) on texts
/// whose words are separated by spaces. Each text is cut into sentences by <c>cut_sent</c> (after 。！？? or
/// "......" or "……" unless a closing quote follows, and after a closing quote that ends such a sentence), the
/// pieces that are not empty are whitespace-normalised (<c>" ".join(s.split())</c>) and their words
/// (<c>s.split(" ")</c>, so a blank piece contributes one empty word) flattened into one list.
/// ROUGE-N counts distinct n-grams (sets): p = |H∩R|/|H|, r = |H∩R|/|R| (0 when the side is empty);
/// ROUGE-L uses the longest common subsequence of the two word lists: p = lcs/|H|, r = lcs/|R|.
/// Both report f = 2·p·r / (p + r + 1e-8).
/// </summary>
public static class ChineseRouge
{
    static readonly Regex SentenceEnd = new("([。！？\\?])([^”’])", RegexOptions.CultureInvariant);
    static readonly Regex SixDots = new("(\\.{6})([^”’])", RegexOptions.CultureInvariant);
    static readonly Regex TwoEllipses = new("(…{2})([^”’])", RegexOptions.CultureInvariant);
    static readonly Regex QuotedEnd = new("([。！？\\?][”’])([^，。！？\\?])", RegexOptions.CultureInvariant);

    public static RougeScores Score(string hypothesis, string reference)
    {
        List<string> hyp = Words(hypothesis), refWords = Words(reference);
        return new RougeScores(RougeN(hyp, refWords, 1), RougeN(hyp, refWords, 2), RougeL(hyp, refWords));
    }

    /// <summary>The flattened word list <c>get_scores</c> scores a space-separated text by.</summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        foreach (string sentence in CutSentences(text))
        {
            if (sentence.Length == 0) continue;
            words.AddRange(string.Join(' ', PythonText.SplitWhitespace(sentence)).Split(' '));
        }
        return words;
    }

    static string[] CutSentences(string text)
    {
        text = SentenceEnd.Replace(text, "$1\n$2");
        text = SixDots.Replace(text, "$1\n$2");
        text = TwoEllipses.Replace(text, "$1\n$2");
        text = QuotedEnd.Replace(text, "$1\n$2");
        return PythonText.RStrip(text).Split('\n');
    }

    static double RougeN(List<string> hypothesis, List<string> reference, int n)
    {
        HashSet<string> hyp = Ngrams(hypothesis, n), refs = Ngrams(reference, n);
        int overlap = 0;
        foreach (string g in hyp) if (refs.Contains(g)) overlap++;
        double precision = hyp.Count == 0 ? 0.0 : (double)overlap / hyp.Count;
        double recall = refs.Count == 0 ? 0.0 : (double)overlap / refs.Count;
        return F1(precision, recall);
    }

    // An n-gram is keyed by its words each prefixed with its length, so distinct word tuples never share a key.
    static HashSet<string> Ngrams(List<string> words, int n)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i + n <= words.Count; i++)
            set.Add(n == 1 ? words[i] : string.Concat(Enumerable.Range(i, n).Select(j => $"{words[j].Length}:{words[j]}")));
        return set;
    }

    static double RougeL(List<string> hypothesis, List<string> reference)
    {
        int lcs = LongestCommonSubsequence(reference, hypothesis);
        double recall = (double)lcs / reference.Count;
        double precision = (double)lcs / hypothesis.Count;
        return F1(precision, recall);
    }

    static int LongestCommonSubsequence(List<string> x, List<string> y)
    {
        var previous = new int[y.Count + 1];
        var current = new int[y.Count + 1];
        for (int i = 1; i <= x.Count; i++)
        {
            for (int j = 1; j <= y.Count; j++)
                current[j] = string.Equals(x[i - 1], y[j - 1], StringComparison.Ordinal)
                    ? previous[j - 1] + 1
                    : Math.Max(previous[j], current[j - 1]);
            (previous, current) = (current, previous);
        }
        return previous[y.Count];
    }

    static double F1(double precision, double recall) => 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}
