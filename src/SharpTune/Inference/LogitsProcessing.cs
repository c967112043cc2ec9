namespace SharpTune.Inference;

/// <summary>
/// The score transformations of Hugging Face generation, in its order: repetition penalty and n-gram ban on the
/// raw logits, then (when sampling) temperature, top-k and top-p. Banned tokens get -inf as in transformers.
/// </summary>
public static class LogitsProcessing
{
    /// <summary>For every id already in the sequence: a positive score is divided by the penalty, a negative one multiplied.</summary>
    public static void ApplyRepetitionPenalty(Span<float> logits, IReadOnlyList<int> sequence, float penalty)
    {
        if (penalty == 1f) return;
        var seen = new HashSet<int>();
        foreach (int id in sequence)
        {
            if (!seen.Add(id) || (uint)id >= (uint)logits.Length) continue;
            float s = logits[id];
            logits[id] = s < 0 ? s * penalty : s / penalty;
        }
    }

    /// <summary>Bans every token that would repeat an n-gram already present in the sequence.</summary>
    public static void ApplyNoRepeatNgram(Span<float> logits, IReadOnlyList<int> sequence, int n)
    {
        if (n <= 0 || sequence.Count + 1 < n) return;
        int prefixStart = sequence.Count - (n - 1);
        for (int start = 0; start + n <= sequence.Count; start++)
        {
            bool match = true;
            for (int i = 0; i < n - 1 && match; i++) match = sequence[start + i] == sequence[prefixStart + i];
            if (match)
            {
                int banned = sequence[start + n - 1];
                if ((uint)banned < (uint)logits.Length) logits[banned] = float.NegativeInfinity;
            }
        }
    }

    public static void ApplyTemperature(Span<float> logits, float temperature)
    {
        if (temperature == 1f) return;
        for (int i = 0; i < logits.Length; i++) logits[i] /= temperature;
    }

    /// <summary>Keeps the scores at or above the k-th largest (ties with it survive, as in transformers).</summary>
    public static void ApplyTopK(Span<float> logits, int k)
    {
        if (k <= 0 || k >= logits.Length) return;
        // A k-element min-heap finds the k-th largest in O(V log k): this runs once per sampled token over the
        // whole vocabulary, where a full sort would dominate the decode step.
        var smallestOfTop = new PriorityQueue<float, float>(k);
        foreach (float v in logits)
        {
            if (smallestOfTop.Count < k) smallestOfTop.Enqueue(v, v);
            else if (v > smallestOfTop.Peek()) smallestOfTop.EnqueueDequeue(v, v);
        }
        float threshold = smallestOfTop.Peek();
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] < threshold) logits[i] = float.NegativeInfinity;
    }

    /// <summary>
    /// Nucleus filtering as transformers does it: sort ascending, remove the tokens whose cumulative probability is
    /// ≤ 1 - top_p, always keeping the most likely one. Tokens already at -inf have probability 0, so only the
    /// others are sorted (after top-k that is a handful, not the vocabulary).
    /// </summary>
    public static void ApplyTopP(Span<float> logits, float topP)
    {
        if (topP >= 1f) return;
        var candidates = new List<int>();
        for (int i = 0; i < logits.Length; i++)
            if (!float.IsNegativeInfinity(logits[i])) candidates.Add(i);
        int[] order = candidates.ToArray();
        var keys = new float[order.Length];
        for (int i = 0; i < order.Length; i++) keys[i] = logits[order[i]];
        Array.Sort(keys, order);
        var probs = Softmax(keys);
        double cumulative = 0;
        for (int i = 0; i < order.Length - 1; i++)
        {
            cumulative += probs[i];
            if (cumulative <= 1 - topP) logits[order[i]] = float.NegativeInfinity;
            else break;
        }
    }

    /// <summary>
    /// The highest-scoring token <paramref name="constraint"/> allows (a stop token when it may stop; the first of
    /// equal scores, as <see cref="ArgMax"/>): the best one is tried first, and when it is refused only the tokens
    /// scoring above the best allowed one so far are tested, so a greedy step does not test the whole vocabulary.
    /// </summary>
    public static int ConstrainedArgMax(ReadOnlySpan<float> logits, ITokenConstraint constraint, IReadOnlySet<int> stopTokenIds)
    {
        int best = ArgMax(logits);
        if (Allowed(best, constraint, stopTokenIds)) return best;
        int chosen = -1;
        for (int i = 0; i < logits.Length; i++)
            if ((chosen < 0 || logits[i] > logits[chosen]) && Allowed(i, constraint, stopTokenIds)) chosen = i;
        return chosen >= 0 ? chosen : throw new InvalidOperationException("no token can continue the constrained output");
    }

    /// <summary>Bans every token <paramref name="constraint"/> refuses (before temperature, top-k and top-p, so those choose among allowed tokens).</summary>
    public static void ApplyConstraint(Span<float> logits, ITokenConstraint constraint, IReadOnlySet<int> stopTokenIds)
    {
        bool any = false;
        for (int i = 0; i < logits.Length; i++)
        {
            if (float.IsNegativeInfinity(logits[i])) continue;
            if (Allowed(i, constraint, stopTokenIds)) any = true;
            else logits[i] = float.NegativeInfinity;
        }
        if (!any) throw new InvalidOperationException("no token can continue the constrained output");
    }

    private static bool Allowed(int id, ITokenConstraint constraint, IReadOnlySet<int> stopTokenIds) =>
        stopTokenIds.Contains(id) ? constraint.CanStop : constraint.Allows(id);

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Draws an id from softmax(logits).</summary>
    public static int Sample(ReadOnlySpan<float> logits, Random random)
    {
        var probs = Softmax(logits);
        double r = random.NextDouble();
        double cumulative = 0;
        int last = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] <= 0) continue;
            last = i;
            cumulative += probs[i];
            if (r < cumulative) return i;
        }
        return last;
    }

    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) if (v > max) max = v;
        var p = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            p[i] = float.IsNegativeInfinity(logits[i]) ? 0 : Math.Exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }
}
