using SharpTune.Evaluation.Segmentation;

namespace SharpTune.Evaluation.Metrics;

/// <summary>The four scores of one (prediction, reference) pair, each ×100 and rounded to 4 decimals.</summary>
public readonly record struct GenerationScores(double Bleu4, double Rouge1, double Rouge2, double RougeL);

/// <summary>
/// LLaMA-Factory's generation metrics (<c>ComputeSimilarity</c> in src/llamafactory/train/sft/metric.py, the
/// <c>predict_with_generate</c> evaluation), computed the same way per pair:
/// BLEU-4 is nltk's sentence_bleu with method3 smoothing over the characters (code points) of the texts
/// (<see cref="SentenceBleu"/>); ROUGE-1/2/L are rouge_chinese's F-scores on the jieba-segmented texts joined by
/// spaces (<see cref="JiebaSegmenter"/>, <see cref="ChineseRouge"/>), all three 0 when either segmented text has no
/// non-blank word. Each score is ×100 and rounded to 4 decimals as Python's round does; <see cref="Compute"/>
/// averages them as numpy's mean does.
/// </summary>
public static class GenerationMetrics
{
    public const string Bleu4Key = "bleu-4";
    public const string Rouge1Key = "rouge-1";
    public const string Rouge2Key = "rouge-2";
    public const string RougeLKey = "rouge-l";

    /// <summary>The averaged scores keyed "rouge-1", "rouge-2", "rouge-l", "bleu-4" (LLaMA-Factory's order and names).</summary>
    public static IReadOnlyDictionary<string, double> Compute(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(references);
        if (predictions.Count != references.Count)
            throw new ArgumentException($"{predictions.Count} predictions but {references.Count} references; they must pair up one to one");
        if (predictions.Count == 0) throw new ArgumentException("no predictions to score");
        return Mean(predictions.Select((prediction, i) => Score(prediction, references[i])).ToList());
    }

    /// <summary>Pairs already scored, averaged as <see cref="Compute"/> averages them.</summary>
    public static IReadOnlyDictionary<string, double> Mean(IReadOnlyList<GenerationScores> scores)
    {
        if (scores.Count == 0) throw new ArgumentException("no scores to average");
        var bleu = new double[scores.Count];
        var rouge1 = new double[scores.Count];
        var rouge2 = new double[scores.Count];
        var rougeL = new double[scores.Count];
        for (int i = 0; i < scores.Count; i++)
            (bleu[i], rouge1[i], rouge2[i], rougeL[i]) = (scores[i].Bleu4, scores[i].Rouge1, scores[i].Rouge2, scores[i].RougeL);
        return new Dictionary<string, double>
        {
            [Rouge1Key] = NumpyMean(rouge1),
            [Rouge2Key] = NumpyMean(rouge2),
            [RougeLKey] = NumpyMean(rougeL),
            [Bleu4Key] = NumpyMean(bleu),
        };
    }

    /// <summary>All four scores of one pair (one segmentation of each text).</summary>
    public static GenerationScores Score(string prediction, string reference)
    {
        RougeScores rouge = RougeFractions(prediction, reference);
        return new GenerationScores(Bleu4(prediction, reference), Percent(rouge.Rouge1), Percent(rouge.Rouge2), Percent(rouge.RougeL));
    }

    public static double Bleu4(string prediction, string reference) =>
        Percent(SentenceBleu.Score(PythonText.CodePoints(prediction), PythonText.CodePoints(reference)));

    public static double Rouge1(string prediction, string reference) => Percent(RougeFractions(prediction, reference).Rouge1);

    public static double Rouge2(string prediction, string reference) => Percent(RougeFractions(prediction, reference).Rouge2);

    public static double RougeL(string prediction, string reference) => Percent(RougeFractions(prediction, reference).RougeL);

    static RougeScores RougeFractions(string prediction, string reference)
    {
        string hypothesis = string.Join(' ', JiebaSegmenter.Default.Cut(prediction));
        string target = string.Join(' ', JiebaSegmenter.Default.Cut(reference));
        if (PythonText.SplitWhitespace(hypothesis).Count == 0 || PythonText.SplitWhitespace(target).Count == 0)
            return new RougeScores(0, 0, 0);
        return ChineseRouge.Score(hypothesis, target);
    }

    static double Percent(double fraction) => PythonJson.Round(fraction * 100, 4);

    /// <summary>
    /// numpy's float64 mean in numpy's order: the reduction starts from the first element and adds the pairwise sum
    /// (8 accumulators per block of up to 128) of the rest, then divides by n.
    /// </summary>
    internal static double NumpyMean(double[] values) =>
        (values[0] + PairwiseSum(values, 1, values.Length - 1)) / values.Length;

    static double PairwiseSum(double[] a, int start, int n)
    {
        if (n < 8)
        {
            double res = 0.0;
            for (int i = 0; i < n; i++) res += a[start + i];
            return res;
        }
        if (n <= 128)
        {
            var r = new double[8];
            for (int j = 0; j < 8; j++) r[j] = a[start + j];
            int i;
            for (i = 8; i < n - (n % 8); i += 8)
                for (int j = 0; j < 8; j++) r[j] += a[start + i + j];
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) res += a[start + i];
            return res;
        }
        int half = n / 2;
        half -= half % 8;
        return PairwiseSum(a, start, half) + PairwiseSum(a, start + half, n - half);
    }
}
