using SharpTune.FineTuning;
using SharpTune.Hparams;
using SharpTune.Peft.Lora;
using SharpTune.Quantization;

namespace SharpTune.Tests.Training;

/// <summary>create_new_adapter: the given adapters merged into the base and a fresh adapter trained on top (LLaMA-Factory's rule).</summary>
public sealed class CreateNewAdapterTests
{
    private static readonly FinetuningArguments Args = new() { LoraRank = 4, LoraTarget = ["q_proj", "v_proj"] };

    /// <summary>The lora fixture's loss on the shared batch, from PEFT (CheckGradCommandTests uses the same number).</summary>
    private const double AdaptedLoss = 6.352047443389893;

    [Fact]
    public void WithCreateNewAdapterEveryAdapterIsMergedAndANewOneStartsFromZero()
    {
        var args = new FinetuningArguments { LoraRank = 4, LoraTarget = ["q_proj", "v_proj"], CreateNewAdapter = true };
        using var model = (LoraFineTuning)TrainableModels.Create(TrainingFixtures.BaseModel, args, false, new SeededRandom(1), [TrainingFixtures.LoraAdapter]);

        // The fresh adapter has B = 0, so the model computes the merged base: the adapted loss.
        Assert.Equal(4, model.Rank);
        Assert.Equal(6, model.Adapters.Count);
        Assert.All(model.Adapters, a => Assert.All(a.B.Data, v => Assert.Equal(0f, v)));
        Assert.Equal(AdaptedLoss, model.Evaluate(TrainingFixtures.Batch()).Mean, 1e-4);
        Assert.All(model.Decoder.Linears, l => Assert.True(l.Tuners.Count <= 1));
    }

    [Fact]
    public void WithoutItTheLastAdapterIsContinued()
    {
        using var model = (LoraFineTuning)TrainableModels.Create(TrainingFixtures.BaseModel, Args, false, new SeededRandom(1), [TrainingFixtures.LoraAdapter]);

        Assert.Equal(8, model.Rank);
        Assert.Contains(model.Adapters, a => a.B.Data.Any(v => v != 0));
        Assert.Equal(AdaptedLoss, model.Evaluate(TrainingFixtures.Batch()).Mean, 1e-4);
    }

    [Fact]
    public void OnAQuantizedBaseTheSingleAdapterIsContinuedAsLlamaFactoryDoes()
    {
        var args = new FinetuningArguments { LoraRank = 4, CreateNewAdapter = true };
        using var model = (LoraFineTuning)TrainableModels.Create(TrainingFixtures.BaseModel, args, false, new SeededRandom(1), [TrainingFixtures.LoraAdapter],
            new QuantizationOptions(8));

        Assert.Equal(8, model.Rank);
        Assert.Contains(model.Adapters, a => a.B.Data.Any(v => v != 0));
    }
}
