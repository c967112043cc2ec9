using SharpTune.Data;
using SharpTune.Inference;
using SharpTune.Peft.Lora;
using SharpTune.Tests.Model;
using SharpTune.Tests.Training;
using SharpTune.Training.Model;
using SharpTune.Training.Ppo;

namespace SharpTune.Tests.Inference;

/// <summary>
/// PPO's responses: the training decoder generates with its tuners on, and each generated row is cut back to a query
/// and a response by LLaMA-Factory's get_inputs rule (the expected rows below follow its code: response[i, :last
/// non-pad index + 1], + 2 when eos is the pad token, 1 for a row of pads, over rows padded to the longest).
/// </summary>
public sealed class PpoRolloutTests
{
    private const int Pad = 0, Eos = 2, Other = 7;

    private static PpoSample Single(GenerationResult result, int eos, params GenerationResult[] others) =>
        PpoRollout.Trim([[5, 6], .. others.Select(_ => new[] { 5 })], [result, .. others], Pad, eos)[0];

    [Fact]
    public void A_stopped_response_keeps_its_stop_token_and_a_cut_one_ends_at_its_last_token()
    {
        Assert.Equal([11, 12, Other], Single(new GenerationResult([11, 12], FinishReason.Stop, Other), Eos).Response);
        Assert.Equal([11, 12, 13], Single(new GenerationResult([11, 12, 13], FinishReason.Length), Eos).Response);
    }

    [Fact]
    public void Pad_tokens_the_policy_generated_at_the_end_are_dropped_and_those_before_kept()
    {
        Assert.Equal([11, Pad, 12], Single(new GenerationResult([11, Pad, 12, Pad, Pad], FinishReason.Length), Eos).Response);
    }

    [Fact]
    public void A_response_of_pad_tokens_only_is_one_pad_token()
    {
        Assert.Equal([Pad], Single(new GenerationResult([], FinishReason.Stop, Pad), Eos).Response);
        Assert.Equal([Pad], Single(new GenerationResult([Pad, Pad], FinishReason.Length), Eos).Response);
    }

    [Fact]
    public void When_eos_is_the_pad_token_the_eos_that_ended_a_response_is_kept_within_the_batchs_width()
    {
        var longer = new GenerationResult([21, 22, 23, 24], FinishReason.Length);
        Assert.Equal([11, 12, Pad], Single(new GenerationResult([11, 12], FinishReason.Stop, Pad), Pad, longer).Response);
        // The longest row has no padding after it, so nothing follows its last token.
        Assert.Equal([11, 12, 13], Single(new GenerationResult([11, 12, 13], FinishReason.Length), Pad).Response);
        // A row stopped by another token is followed by the batch's padding, which is taken as its eos.
        Assert.Equal([11, Other, Pad], Single(new GenerationResult([11], FinishReason.Stop, Other), Pad, longer).Response);
    }

    [Fact]
    public void Queries_lose_their_leading_pad_tokens_and_a_prompt_of_pads_is_refused()
    {
        var result = new GenerationResult([11], FinishReason.Length);
        Assert.Equal([5, Pad, 6], PpoRollout.Trim([[Pad, Pad, 5, Pad, 6]], [result], Pad, Eos)[0].Query);
        var error = Assert.Throws<ArgumentException>(() => PpoRollout.Trim([[5], [Pad, Pad]], [result, result], Pad, Eos));
        Assert.Equal("prompt 1 holds only pad tokens", error.Message);
    }

    [Fact]
    public void The_policy_generates_with_its_adapter_as_the_adapter_loaded_for_generation_does()
    {
        var fx = new ReferenceFixture("qwen2-small-vocab");
        int[] prompt = ReferenceFixture.IntArray(fx.Reference.GetProperty("generation").GetProperty("prompt_ids"));
        int[][] prompts = [prompt[..3], prompt];
        int pad = fx.Reference.GetProperty("generation").GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).Max() + 1;
        var options = new GenerationOptions { MaxNewTokens = 6 };
        using var policy = LoraFineTuning.Resume(DecoderModel.Load(TrainingFixtures.BaseModel, gradientCheckpointing: false), TrainingFixtures.LoraAdapter);

        var samples = PpoRollout.Generate(policy.Decoder, [.. prompts.Select(p => new GenerationExample(p, []))], options, pad, Eos);

        using var adapted = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [TrainingFixtures.LoraAdapter]);
        using var plain = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(prompts[i], samples[i].Query);
            Assert.Equal(new Generator(adapted).Generate(prompts[i], options).NewIds, samples[i].Response);
        }
        Assert.NotEqual(prompts.Select(p => new Generator(plain).Generate(p, options).NewIds), samples.Select(s => s.Response));
    }

    [Fact]
    public void Responses_need_at_least_one_new_token()
    {
        using var model = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        var error = Assert.Throws<ArgumentException>(() =>
            PpoRollout.Generate(model, [new GenerationExample([1, 2], [])], new GenerationOptions { MaxNewTokens = 0 }, Pad, Eos));
        Assert.Equal("max_new_tokens must be ≥ 1 for PPO's responses, got 0", error.Message);
    }
}
