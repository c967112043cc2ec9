using SharpTune.Hparams;
using SharpTune.FineTuning;

namespace SharpTune.Tests.Hparams;

/// <summary>A refused combination caught in code (arguments not parsed from a config) says what the config parser says.</summary>
public sealed class RefusedPairTests
{
    [Theory]
    [InlineData(FinetuningType.Full)]
    [InlineData(FinetuningType.Freeze)]
    public void AdaptersWithoutLoraAreRefusedWithTheConfigsMessage(FinetuningType type)
    {
        var e = Assert.Throws<ArgumentException>(() => TrainableModels.CheckCombination(new FinetuningArguments { FinetuningType = type }, ["adapter"], null));
        Assert.Equal("adapter_name_or_path: adapters are only valid with an adapter method (finetuning_type: lora, ia3, bitfit, adapter, prompt_tuning, p_tuning or prefix_tuning)", e.Message);
    }
}
