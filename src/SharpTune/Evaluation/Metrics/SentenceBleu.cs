namespace SharpTune.Evaluation.Metrics;

/// <summary>
/// nltk's <c>sentence_bleu([reference], hypothesis, smoothing_function=SmoothingFunction().method3)</c> with the
/// default weights (0.25, 0.25, 0.25, 0.25), on sequences of code points as LLaMA-Factory passes them
/// (<c>list(text)</c>). Modified n-gram precision clips each hypothesis n-gram count by its count in the reference;
/// its denominator is the number of hypothesis n-grams (at least 1). No unigram match gives 0. method3 (NIST
/// geometric smoothing) replaces the k-th zero precision by 1 / (2^k · denominator). The brevity penalty is 1 when the
/// hypothesis is longer than the reference, 0 for an empty hypothesis, else exp(1 - r/c). The result is
/// BP · exp(fsum(0.25 · log p_n)), in 0..1.
/// </summary>
public static class SentenceBleu
{
    const int MaxOrder = 4;

    public static double Score(IReadOnlyList<int> hypothesis, IReadOnlyList<int> reference)
    {
        var numerators = new long[MaxOrder];
        var denominators = new long[MaxOrder];
        for (int n = 1; n <= MaxOrder; n++)
        {
            var referenceCounts = CountNgrams(reference, n);
            long matched = 0, total = 0;
            foreach (var (ngram, count) in CountNgrams(hypothesis, n))
            {
                total += count;
                matched += Math.Min(count, referenceCounts.GetValueOrDefault(ngram));
            }
            numerators[n - 1] = matched;
            denominators[n - 1] = Math.Max(1, total);
        }
        if (numerators[0] == 0) return 0.0;

        var logs = new double[MaxOrder];
        int k = 1;
        for (int i = 0; i < MaxOrder; i++)
        {
            double p = numerators[i] == 0
                ? 1.0 / (Math.Pow(2, k++) * denominators[i])
                : (double)numerators[i] / denominators[i];
            logs[i] = 0.25 * Math.Log(p);
        }
        return BrevityPenalty(reference.Count, hypothesis.Count) * Math.Exp(PythonText.FSum(logs));
    }

    /// <summary>nltk's brevity_penalty(closest_ref_len, hyp_len).</summary>
    public static double BrevityPenalty(int referenceLength, int hypothesisLength)
    {
        if (hypothesisLength > referenceLength) return 1.0;
        if (hypothesisLength == 0) return 0.0;
        return Math.Exp(1.0 - (double)referenceLength / hypothesisLength);
    }

    static Dictionary<(int, int, int, int), long> CountNgrams(IReadOnlyList<int> tokens, int n)
    {
        var counts = new Dictionary<(int, int, int, int), long>();
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            var key = (tokens[i], n > 1 ? tokens[i + 1] : -1, n > 2 ? tokens[i + 2] : -1, n > 3 ? tokens[i + 3] : -1);
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }
        return counts;
    }
}
