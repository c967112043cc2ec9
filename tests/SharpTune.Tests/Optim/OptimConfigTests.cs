using SharpTune.Hparams;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Optim;

public class OptimConfigTests
{
    private const string Model = "model_name_or_path: Qwen/Qwen2.5-0.5B\n";

    private static SftConfig Parse(string yaml) => SftConfig.Parse(Model + yaml, [], Path.GetTempPath());

    [Theory]
    [InlineData("", "adamw_torch")]
    [InlineData("optim: adamw_torch", "adamw_torch")]
    [InlineData("optim: adamw_torch_fused", "adamw_torch")]
    [InlineData("optim: adamw_8bit", "adamw_8bit")]
    [InlineData("optim: adamw_bnb_8bit", "adamw_8bit")]
    [InlineData("optim: paged_adamw_32bit", "paged_adamw_32bit")]
    [InlineData("optim: paged_adamw_8bit", "paged_adamw_8bit")]
    public void Optim_IsReadAsTheImplementedName(string yaml, string expected)
    {
        var config = Parse(yaml);
        Assert.Equal(expected, config.Training.Optim);
        Assert.Empty(config.Notes);
    }

    [Fact]
    public void AdamWHf_RunsTorchAdamW_WithANote()
    {
        var config = Parse("optim: adamw_hf");
        Assert.Equal("adamw_torch", config.Training.Optim);
        Assert.StartsWith("optim adamw_hf runs adamw_torch: transformers' own AdamW applies weight decay after the step", Assert.Single(config.Notes));
    }

    [Theory]
    [InlineData("optim: sgd", "sgd")]
    [InlineData("optim: paged_lion_8bit", "paged_lion_8bit")]
    [InlineData("optim: adamw_apex_fused", "adamw_apex_fused")]
    public void OtherOptimizers_AreNotSupported_AndTheMessageListsTheSupportedOnes(string yaml, string name)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(yaml));
        Assert.Equal($"optim: '{name}' is not supported (supported: adamw_torch, adamw_8bit, paged_adamw_32bit, paged_adamw_8bit, " +
            "adamw_torch_fused, adamw_hf, adamw_bnb_8bit) (line 2 of config)", e.Message);
    }

    [Fact]
    public void TheConfigReaderAndTheFactory_KnowTheSameOptimizers()
    {
        Assert.Equal(OptimizerNames.Supported, ConfigKeys.SupportedOptimizers);
        Assert.All(ConfigKeys.OptimizerAliases.Values, name => Assert.Contains(name, OptimizerNames.Supported));
    }
}
