using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Tests.Model;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Inference;

/// <summary>Greedy decoding with the KV cache against transformers' generate() on the same prompt.</summary>
public class GenerationTests
{
    [Theory]
    [InlineData("qwen2-tiny", "greedy", 1.0f)]
    [InlineData("qwen2-tiny", "greedy_repetition_penalty", 1.1f)]
    [InlineData("qwen2-small-vocab", "greedy", 1.0f)]
    [InlineData("qwen2-small-vocab", "greedy_repetition_penalty", 1.1f)]
    public void GreedyIdsMatchTransformers(string fixture, string variant, float penalty)
    {
        var fx = new ReferenceFixture(fixture);
        var generation = fx.Reference.GetProperty("generation");
        int[] prompt = ReferenceFixture.IntArray(generation.GetProperty("prompt_ids"));
        int[] expected = ReferenceFixture.IntArray(generation.GetProperty(variant).GetProperty("new_ids"));
        using var model = DecoderModel.LoadForGeneration(fx.Directory);

        var result = new Generator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = expected.Length, RepetitionPenalty = penalty });

        Assert.Equal(expected, result.NewIds);
        Assert.Equal(FinishReason.Length, result.FinishReason);
    }

    [Fact]
    public void StopsAtAStopTokenAndReportsIt()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        var generation = fx.Reference.GetProperty("generation");
        int[] prompt = ReferenceFixture.IntArray(generation.GetProperty("prompt_ids"));
        int[] greedy = ReferenceFixture.IntArray(generation.GetProperty("greedy").GetProperty("new_ids"));
        using var model = DecoderModel.LoadForGeneration(fx.Directory);

        var result = new Generator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = 20, StopTokenIds = new HashSet<int> { greedy[3] } });

        Assert.Equal(greedy[..3], result.NewIds);
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(greedy[3], result.StopTokenId);
    }

    [Fact]
    public void SamplingWithASeedIsReproducibleAndStaysInTopK()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        int[] prompt = ReferenceFixture.IntArray(fx.Reference.GetProperty("generation").GetProperty("prompt_ids"));
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var options = new GenerationOptions { MaxNewTokens = 12, DoSample = true, Temperature = 0.8f, TopK = 1, Seed = 7 };

        var topOne = new Generator(model).Generate(prompt, options);
        var greedy = new Generator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = 12 });
        Assert.Equal(greedy.NewIds, topOne.NewIds);

        var sampled = options with { TopK = 50, TopP = 0.9f };
        Assert.Equal(new Generator(model).Generate(prompt, sampled).NewIds, new Generator(model).Generate(prompt, sampled).NewIds);
    }
}
