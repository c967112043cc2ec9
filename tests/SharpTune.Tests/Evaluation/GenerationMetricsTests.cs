using System.Text.Json;
using SharpTune.Evaluation;
using SharpTune.Evaluation.Metrics;

namespace SharpTune.Tests.Evaluation;

public class GenerationMetricsTests
{
    [Fact]
    public void Identical_texts_score_100()
    {
        // Every n-gram precision is 1 and BP = 1. ROUGE f = 2·1·1/(2 + 1e-8) = 0.999999995 → 99.9999995 → 100.0.
        var s = GenerationMetrics.Score("The cat sat on the mat.", "The cat sat on the mat.");
        Assert.Equal(new GenerationScores(100.0, 100.0, 100.0, 100.0), s);
    }

    [Fact]
    public void Disjoint_texts_score_0()
    {
        // No character in common: no unigram match, so BLEU is 0; the single words abcd and wxyz differ.
        Assert.Equal(new GenerationScores(0, 0, 0, 0), GenerationMetrics.Score("abcd", "wxyz"));
    }

    [Fact]
    public void English_partial_overlap()
    {
        // Words (jieba's spaces collapse): the cat sat on the mat / the cat is on the mat.
        // ROUGE-1 on distinct words {the,cat,sat,on,mat} vs {the,cat,is,on,mat}: 4/5 both ways → f = 80.0.
        // ROUGE-2 on distinct bigrams: the-cat, on-the, the-mat of 5 each → 3/5 → 60.0.
        // ROUGE-L: LCS "the cat on the mat" = 5 of 6 both ways → 83.3333.
        var s = GenerationMetrics.Score("the cat sat on the mat", "the cat is on the mat");
        Assert.Equal(80.0, s.Rouge1);
        Assert.Equal(60.0, s.Rouge2);
        Assert.Equal(83.3333, s.RougeL);
        // BLEU over characters, hand-checked: "abcdx" vs "abcde": p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2, BP = 1,
        // (0.8·0.75·(2/3)·0.5)^(1/4) = 0.2^(1/4) = 0.66874 → 66.874.
        Assert.Equal(66.874, GenerationMetrics.Bleu4("abcdx", "abcde"));
    }

    [Fact]
    public void Chinese_partial_overlap()
    {
        // jieba: 我/爱/北京 and 我/爱/上海. ROUGE-1 2/3 → 66.6667; ROUGE-2 {我爱,爱北京} vs {我爱,爱上海} 1/2 → 50.0;
        // ROUGE-L lcs 2 of 3 → 66.6667. BLEU per character: p1 = 2/4, p2 = 1/3, p3 = 0/2 → 1/(2·2), p4 = 0/1 → 1/(4·1),
        // BP = 1: (1/2 · 1/3 · 1/4 · 1/4)^(1/4) = (1/96)^(1/4) = 0.319472 → 31.9472.
        Assert.Equal(new GenerationScores(31.9472, 66.6667, 50.0, 66.6667), GenerationMetrics.Score("我爱北京", "我爱上海"));
    }

    [Fact]
    public void Short_prediction_pays_the_brevity_penalty()
    {
        // "abcd" inside "abcdefgh": every precision is 1, BP = exp(1 - 8/4) = e^-1 = 0.367879 → 36.7879.
        Assert.Equal(36.7879, GenerationMetrics.Bleu4("abcd", "abcdefgh"));
        Assert.Equal(36.7879, 100 * SentenceBleu.BrevityPenalty(8, 4), 4);
        Assert.Equal(1.0, SentenceBleu.BrevityPenalty(4, 5));
    }

    [Fact]
    public void Empty_prediction_scores_0()
    {
        Assert.Equal(new GenerationScores(0, 0, 0, 0), GenerationMetrics.Score("", "参考答案"));
        // Blank text has no words after segmentation: LLaMA-Factory's rule sets ROUGE to 0 (BLEU: no match).
        Assert.Equal(new GenerationScores(0, 0, 0, 0), GenerationMetrics.Score("   ", "空白预测"));
    }

    [Fact]
    public void Pairs_and_mean_match_the_python_reference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixtures("metrics", "metrics_reference.json")));
        var predictions = new List<string>();
        var references = new List<string>();
        foreach (var pair in doc.RootElement.GetProperty("pairs").EnumerateArray())
        {
            string p = pair.GetProperty("prediction").GetString()!, r = pair.GetProperty("reference").GetString()!;
            predictions.Add(p);
            references.Add(r);
            var s = GenerationMetrics.Score(p, r);
            Assert.Equal(pair.GetProperty("bleu-4").GetDouble(), s.Bleu4);
            Assert.Equal(pair.GetProperty("rouge-1").GetDouble(), s.Rouge1);
            Assert.Equal(pair.GetProperty("rouge-2").GetDouble(), s.Rouge2);
            Assert.Equal(pair.GetProperty("rouge-l").GetDouble(), s.RougeL);
        }
        var mean = GenerationMetrics.Compute(predictions, references);
        Assert.Equal(["rouge-1", "rouge-2", "rouge-l", "bleu-4"], mean.Keys);
        foreach (var (key, value) in mean)
            Assert.Equal(doc.RootElement.GetProperty("mean").GetProperty(key).GetDouble(), value, 9);
    }

    [Fact]
    public void Mismatched_or_empty_lists_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => GenerationMetrics.Compute(["a"], []));
        Assert.Equal("1 predictions but 0 references; they must pair up one to one", e.Message);
        Assert.Throws<ArgumentException>(() => GenerationMetrics.Compute([], []));
    }

    [Fact]
    public void Python_round_and_fsum()
    {
        // 2.675 is stored as 2.67499999999999982236431605997495353221893310546875: Python's round gives 2.67.
        Assert.Equal(2.67, PythonJson.Round(2.675, 2));
        Assert.Equal(0.125, PythonJson.Round(0.125, 3));
        Assert.Equal(0.12, PythonJson.Round(0.125, 2));   // an exact tie goes to even
        Assert.Equal(1.0, PythonText.FSum([1e100, 1.0, -1e100]));
        Assert.Equal(0.0, PythonText.FSum([]));
    }
}
