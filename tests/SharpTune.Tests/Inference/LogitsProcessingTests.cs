using SharpTune.Inference;

namespace SharpTune.Tests.Inference;

/// <summary>Each logits processor on hand-worked inputs, following transformers' definitions.</summary>
public class LogitsProcessingTests
{
    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeScoresOncePerId()
    {
        float[] logits = [2f, -2f, 3f, 1f];
        LogitsProcessing.ApplyRepetitionPenalty(logits, [0, 1, 0], 2f);
        Assert.Equal([1f, -4f, 3f, 1f], logits);
    }

    [Fact]
    public void NoRepeatNgramBansTheTokenThatWouldRepeatABigram()
    {
        float[] logits = [0f, 0f, 0f, 0f];
        // The sequence ends in 1; the bigram (1, 2) already occurred, so 2 is banned.
        LogitsProcessing.ApplyNoRepeatNgram(logits, [1, 2, 3, 1], 2);
        Assert.Equal([0f, 0f, float.NegativeInfinity, 0f], logits);
    }

    [Fact]
    public void TopKKeepsTiesWithTheKthScore()
    {
        float[] logits = [1f, 3f, 2f, 2f, 0f];
        LogitsProcessing.ApplyTopK(logits, 2);
        Assert.Equal([float.NegativeInfinity, 3f, 2f, 2f, float.NegativeInfinity], logits);
    }

    [Fact]
    public void TopPKeepsTheSmallestSetAboveTheMass()
    {
        // Probabilities 0.5, 0.3, 0.2 (ln of them as logits): top_p 0.7 keeps 0.5 and 0.3, drops 0.2.
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.2f)];
        LogitsProcessing.ApplyTopP(logits, 0.7f);
        Assert.True(float.IsNegativeInfinity(logits[2]));
        Assert.False(float.IsNegativeInfinity(logits[0]) || float.IsNegativeInfinity(logits[1]));
    }

    [Fact]
    public void TopPAlwaysKeepsTheMostLikelyToken()
    {
        float[] logits = [0f, 10f];
        LogitsProcessing.ApplyTopP(logits, 0.01f);
        Assert.True(float.IsNegativeInfinity(logits[0]));
        Assert.Equal(10f, logits[1]);
    }

    [Fact]
    public void TopKOnALargeVocabularyKeepsExactlyTheKLargest()
    {
        var random = new Random(3);
        float[] logits = Enumerable.Range(0, 5000).Select(_ => (float)random.NextDouble()).ToArray();
        float kth = logits.OrderByDescending(v => v).ElementAt(19);

        LogitsProcessing.ApplyTopK(logits, 20);

        Assert.Equal(20, logits.Count(v => !float.IsNegativeInfinity(v)));
        Assert.All(logits.Where(v => !float.IsNegativeInfinity(v)), v => Assert.True(v >= kth));
    }

    [Fact]
    public void TopPAfterTopKRenormalisesOverTheSurvivors()
    {
        // After top-k leaves probabilities ∝ 0.5, 0.3, 0.2 (the rest -inf), top_p 0.7 drops the 0.2 one.
        float[] logits = [float.NegativeInfinity, MathF.Log(0.2f), float.NegativeInfinity, MathF.Log(0.5f), MathF.Log(0.3f)];
        LogitsProcessing.ApplyTopP(logits, 0.7f);
        Assert.Equal([false, false, false, true, true], logits.Select(v => !float.IsNegativeInfinity(v)));
    }
}
