using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace SharpTune.Evaluation.Segmentation;

/// <summary>
/// jieba's <c>finalseg</c>: a 4-state (B, M, E, S) hidden Markov model that segments runs of characters the
/// dictionary does not cover, by Viterbi decoding. Start and transition log-probabilities are jieba's
/// <c>prob_start.py</c>/<c>prob_trans.py</c>; emissions are <c>prob_emit.py</c>, embedded gzipped as
/// <c>state \t char \t logprob</c> lines with Python's round-trip float text (see Data/SOURCE.md).
/// </summary>
public sealed class JiebaHmm
{
    const double MinFloat = -3.14e100;
    const int B = 0, M = 1, E = 2, S = 3;
    // Indexed in jieba's state order "BMES"; a state's predecessors as finalseg's PrevStatus lists them.
    static readonly char[] StateNames = ['B', 'M', 'E', 'S'];
    static readonly double[] Start = [-0.26268660809250016, MinFloat, MinFloat, -1.4652633398537678];
    static readonly int[][] Previous = [[E, S], [M, B], [B, M], [S, E]];
    static readonly double[,] Transition =
    {
        // from B: to B, M, E, S
        { MinFloat, -0.916290731874155, -0.51082562376599, MinFloat },
        // from M
        { MinFloat, -1.2603623820268226, -0.33344856811948514, MinFloat },
        // from E
        { -0.5897149736854513, MinFloat, MinFloat, -0.8085250474669937 },
        // from S
        { -0.7211965654669841, MinFloat, MinFloat, -0.6658631448798212 },
    };

    readonly Dictionary<char, double>[] _emit;

    JiebaHmm(Dictionary<char, double>[] emit) => _emit = emit;

    public static JiebaHmm LoadEmbedded()
    {
        using var stream = typeof(JiebaHmm).Assembly.GetManifestResourceStream("SharpTune.Evaluation.Segmentation.jieba_hmm_emit.tsv.gz")
            ?? throw new InvalidOperationException("the jieba HMM emission table is missing from the SharpTune assembly");
        using var reader = new StreamReader(new GZipStream(stream, CompressionMode.Decompress), Encoding.UTF8);
        var emit = new Dictionary<char, double>[4];
        for (int s = 0; s < 4; s++) emit[s] = new Dictionary<char, double>(8000);
        string? line;
        int lineNumber = 0;
        while ((line = reader.ReadLine()) != null)
        {
            lineNumber++;
            string[] f = line.Split('\t');
            int state = f.Length == 3 ? Array.IndexOf(StateNames, f[0].Length == 1 ? f[0][0] : '?') : -1;
            if (state < 0 || f[1].Length != 1)
                throw new FormatException($"jieba_hmm_emit.tsv: line {lineNumber}: expected 'state<TAB>char<TAB>logprob'");
            emit[state][f[1][0]] = double.Parse(f[2], CultureInfo.InvariantCulture);
        }
        return new JiebaHmm(emit);
    }

    /// <summary>finalseg.cut: Han runs by Viterbi, the rest split around ASCII alphanumeric numbers/words.</summary>
    public void Cut(string text, List<string> words)
    {
        int i = 0;
        while (i < text.Length)
        {
            int start = i;
            bool han = JiebaSegmenter.IsHan(text[i]);
            while (i < text.Length && JiebaSegmenter.IsHan(text[i]) == han) i++;
            if (han) Viterbi(text.AsSpan(start, i - start), text, start, words);
            else SplitSkip(text[start..i], words);
        }
    }

    // re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)").split(blk), keeping the non-empty pieces in order.
    static void SplitSkip(string block, List<string> words)
    {
        int i = 0, pending = 0;
        while (i < block.Length)
        {
            if (!char.IsAsciiLetterOrDigit(block[i])) { i++; continue; }
            if (i > pending) words.Add(block[pending..i]);
            int start = i;
            while (i < block.Length && char.IsAsciiLetterOrDigit(block[i])) i++;
            if (i + 1 < block.Length && block[i] == '.' && char.IsDigit(block[i + 1]))
            {
                i++;
                while (i < block.Length && char.IsDigit(block[i])) i++;
            }
            if (i < block.Length && block[i] == '%') i++;
            words.Add(block[start..i]);
            pending = i;
        }
        if (block.Length > pending) words.Add(block[pending..]);
    }

    void Viterbi(ReadOnlySpan<char> obs, string text, int offset, List<string> words)
    {
        int n = obs.Length;
        var v = new double[n, 4];
        var back = new int[n, 4];
        for (int y = 0; y < 4; y++) v[0, y] = Start[y] + Emit(y, obs[0]);
        for (int t = 1; t < n; t++)
        {
            for (int y = 0; y < 4; y++)
            {
                double em = Emit(y, obs[t]);
                double best = double.NegativeInfinity;
                int bestState = -1;
                foreach (int y0 in Previous[y])
                {
                    double p = v[t - 1, y0] + Transition[y0, y] + em;
                    // max() over (prob, state) tuples: equal probabilities go to the later state letter.
                    if (bestState < 0 || p > best || (p == best && StateNames[y0] > StateNames[bestState])) { best = p; bestState = y0; }
                }
                v[t, y] = best;
                back[t, y] = bestState;
            }
        }
        int last = v[n - 1, S] > v[n - 1, E] || v[n - 1, S] == v[n - 1, E] ? S : E;
        var states = new int[n];
        states[n - 1] = last;
        for (int t = n - 1; t > 0; t--) states[t - 1] = back[t, states[t]];

        int begin = 0, next = 0;
        for (int i = 0; i < n; i++)
        {
            switch (states[i])
            {
                case B: begin = i; break;
                case E: words.Add(text.Substring(offset + begin, i + 1 - begin)); next = i + 1; break;
                case S: words.Add(text.Substring(offset + i, 1)); next = i + 1; break;
            }
        }
        if (next < n) words.Add(text.Substring(offset + next, n - next));
    }

    double Emit(int state, char c) => _emit[state].TryGetValue(c, out double p) ? p : MinFloat;
}
