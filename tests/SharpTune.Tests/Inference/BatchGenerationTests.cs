using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Tests.IO;
using SharpTune.Tests.Model;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Inference;

/// <summary>
/// Left-padded batched generation against one sequence at a time: padding, mask-derived positions and the batch KV
/// cache must leave every sequence's tokens exactly as <see cref="Generator"/> produces them alone.
/// </summary>
public class BatchGenerationTests
{
    /// <summary>Prompts of four different lengths cut from the fixture's prompt, so the batch needs 3 different pad widths.</summary>
    private static int[][] PromptsOf(ReferenceFixture fx)
    {
        int[] prompt = ReferenceFixture.IntArray(fx.Reference.GetProperty("generation").GetProperty("prompt_ids"));
        Assert.True(prompt.Length >= 6, "the fixture prompt is too short to cut prompts of different lengths from");
        return [prompt[..2], prompt, prompt[1..5], prompt[..5]];
    }

    [Theory]
    [InlineData("qwen2-tiny", 1.0f)]
    [InlineData("qwen2-small-vocab", 1.0f)]
    [InlineData("qwen2-small-vocab", 1.3f)]
    public void GreedyBatchEqualsEachPromptAlone(string fixture, float penalty)
    {
        var fx = new ReferenceFixture(fixture);
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var prompts = PromptsOf(fx);
        var options = new GenerationOptions { MaxNewTokens = 10, RepetitionPenalty = penalty };

        var batched = new BatchGenerator(model).Generate(prompts, options);

        Assert.Equal(prompts.Length, batched.Length);
        for (int b = 0; b < prompts.Length; b++)
        {
            var alone = new Generator(model).Generate(prompts[b], options);
            Assert.Equal(alone.NewIds, batched[b].NewIds);
            Assert.Equal(10, batched[b].NewIds.Length);
            Assert.Equal(FinishReason.Length, batched[b].FinishReason);
        }
    }

    [Fact]
    public void GreedyBatchOnAGeneratedModelWithTheRealVocabularyEqualsEachPromptAlone()
    {
        using var dir = new TempDir();
        string modelDir = Path.Combine(dir.Path, "tiny");
        ModelInitializer.Create(ModelPreset.Get("tiny"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), modelDir, seed: 3);
        using var model = DecoderModel.LoadForGeneration(modelDir);
        int[][] prompts = [[9707, 11, 1879], [151644, 872, 198, 15191, 525, 498, 30, 151645, 198, 151644, 77091, 198], [40, 1079]];
        var options = new GenerationOptions { MaxNewTokens = 8 };

        var batched = new BatchGenerator(model).Generate(prompts, options, padTokenId: 151643);

        for (int b = 0; b < prompts.Length; b++)
            Assert.Equal(new Generator(model).Generate(prompts[b], options).NewIds, batched[b].NewIds);
    }

    [Fact]
    public void ASequenceThatStopsEarlyEndsThereWhileTheOthersContinue()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var prompts = PromptsOf(fx);
        var free = new GenerationOptions { MaxNewTokens = 10 };
        var firstAlone = new Generator(model).Generate(prompts[0], free).NewIds;
        // The third token of the first sequence becomes a stop token, unless it already appears earlier in it.
        int stop = firstAlone[2];
        Assert.DoesNotContain(stop, firstAlone[..2]);
        var options = free with { StopTokenIds = new HashSet<int> { stop } };

        var calls = new List<(int Sequence, int Id)>();
        var batched = new BatchGenerator(model).Generate(prompts, options, (b, id) => calls.Add((b, id)));

        Assert.Equal(firstAlone[..2], batched[0].NewIds);
        Assert.Equal(FinishReason.Stop, batched[0].FinishReason);
        Assert.Equal(stop, batched[0].StopTokenId);
        for (int b = 0; b < prompts.Length; b++)
        {
            var alone = new Generator(model).Generate(prompts[b], options);
            Assert.Equal(alone.NewIds, batched[b].NewIds);
            Assert.Equal(alone.FinishReason, batched[b].FinishReason);
            Assert.Equal(batched[b].NewIds, calls.Where(c => c.Sequence == b).Select(c => c.Id));
        }
        Assert.Contains(batched, r => r.FinishReason == FinishReason.Length);
    }

    [Fact]
    public void SampledSequenceBUsesItsOwnGeneratorSeededSeedPlusB()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var prompts = PromptsOf(fx);
        var options = new GenerationOptions { MaxNewTokens = 8, DoSample = true, Temperature = 1.5f, TopK = 40, TopP = 0.95f, Seed = 11 };

        var batched = new BatchGenerator(model).Generate(prompts, options);

        for (int b = 0; b < prompts.Length; b++)
            Assert.Equal(new Generator(model).Generate(prompts[b], options with { Seed = 11 + b }).NewIds, batched[b].NewIds);
        Assert.NotEqual(batched[1].NewIds, new Generator(model).Generate(prompts[1], options).NewIds);
    }

    [Fact]
    public void AnEmptyPromptIsRefusedByIndex()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        using var model = DecoderModel.LoadForGeneration(fx.Directory);
        var e = Assert.Throws<ArgumentException>(() => new BatchGenerator(model).Generate([[1, 2], []], new GenerationOptions { MaxNewTokens = 2 }));
        Assert.Equal("prompt 1 is empty", e.Message);
    }
}
