using SharpTune.Hparams;
using SharpTune.Training;
using SharpTune.FineTuning;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Training;

public sealed class FreezeTests
{
    private static WeightsFineTuning Freeze(int layers, string[] modules, string[] extra) =>
        WeightsFineTuning.Freeze(DecoderModel.Load(TrainingFixtures.BaseModel, false),
            new FinetuningArguments { FinetuningType = FinetuningType.Freeze, FreezeTrainableLayers = layers, FreezeTrainableModules = [.. modules], FreezeExtraModules = [.. extra] });

    public static TheoryData<int, string[], string[], string[]> Selections => new()
    {
        // last 2 layers, whole layers
        { 2, ["all"], [], ["model.layers.1.", "model.layers.2."] },
        // first layer only
        { -1, ["all"], [], ["model.layers.0."] },
        // the MLP of the last 2 layers, and the embedding
        { 2, ["mlp"], ["embed_tokens"], ["model.layers.1.mlp.", "model.layers.2.mlp.", "model.embed_tokens."] },
        // attention of the last layer plus the final norm: LLaMA-Factory matches "norm" as a substring, so every
        // layer's norms are trained too
        { 1, ["self_attn"], ["norm"], ["model.layers.2.self_attn.", "norm.weight"] },
    };

    [Theory]
    [MemberData(nameof(Selections))]
    public void Selection_follows_llama_factory_and_gradients_equal_full_ft(int layers, string[] modules, string[] extra, string[] expectedPrefixes)
    {
        using var model = Freeze(layers, modules, extra);
        var expectedNames = model.Decoder.Tensors.Select(t => t.Name)
            .Where(n => expectedPrefixes.Any(p => n.StartsWith(p, StringComparison.Ordinal) || (p == "norm.weight" && n.EndsWith(p, StringComparison.Ordinal))))
            .ToArray();
        Assert.NotEmpty(expectedNames);
        Assert.Equal(expectedNames, model.TrainableParameters.Select(p => p.Name).ToArray());
        model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        var full = TrainingFixtures.Read(Path.Combine(TrainingFixtures.BaseModel, "reference", "full_ft_grads.safetensors"));
        TrainingFixtures.AssertGradients(model.TrainableParameters, expectedNames.ToDictionary(n => n, n => full[n]));
    }

    [Fact]
    public void Unknown_modules_are_refused_as_llama_factory_does()
    {
        var e = Assert.Throws<ArgumentException>(() => Freeze(2, ["q_proj"], []));
        Assert.Contains("module 'q_proj' is not found, choose from input_layernorm, mlp, post_attention_layernorm, self_attn", e.Message);
        var extra = Assert.Throws<ArgumentException>(() => Freeze(2, ["all"], ["layers"]));
        Assert.Contains("freeze_extra_modules: module 'layers' is not found, choose from embed_tokens, lm_head, norm", extra.Message);
    }
}
