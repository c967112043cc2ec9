using SharpTune.Api;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Api;

/// <summary>`sharptune api CONFIG.yaml`: what a LLaMA-Factory config makes of the served model.</summary>
[Collection(ApiCollection.Name)]
public sealed class ServedModelConfigTests(ApiServerFixture fx)
{
    private SftConfig Config(string yaml) => SftConfig.Parse($"model_name_or_path: {fx.ModelDir}\n" + yaml);

    [Fact]
    public void TemplateDefaultSystemAndGenerationKeysApply()
    {
        var cfg = Config("template: qwen\ndefault_system: Be kind.\ndo_sample: true\ntemperature: 0.3\ntop_p: 0.5\ntop_k: 7\nmax_new_tokens: 77\nrepetition_penalty: 1.2\n");
        using var served = ServedModel.FromConfig(cfg, null, 1024);

        Assert.Equal("tiny", served.Id);
        Assert.Equal(1024, served.ContextLength);
        Assert.Equal("Be kind.", served.Template.DefaultSystem);
        Assert.Equal(
            fx.Tokenizer.Encode(fx.Template.Render([new(ChatRole.System, "Be kind."), new(ChatRole.User, "hi")], true)),
            served.EncodeChat([new ChatMessage(ChatRole.User, "hi")], null));
        var d = served.Defaults;
        Assert.Equal((true, 0.3f, 0.5f, 7, 77, 1.2f), (d.DoSample, d.Temperature, d.TopP, d.TopK, d.MaxNewTokens, d.RepetitionPenalty));
        Assert.Equal(fx.Base.Defaults.StopTokenIds.Order(), d.StopTokenIds.Order());
    }

    [Fact]
    public void UnwrittenGenerationKeysAreLlamaFactorysDefaultsAndAnAdapterNamesTheModel()
    {
        using var served = ServedModel.FromConfig(Config($"adapter_name_or_path: {fx.AdapterDir}\nfinetuning_type: lora\n"), null, null);

        Assert.Equal("lora-a", served.Id);
        Assert.Equal(32768, served.ContextLength);
        var d = served.Defaults;
        Assert.Equal((true, 0.95f, 0.7f, 50, 1024, 1f), (d.DoSample, d.Temperature, d.TopP, d.TopK, d.MaxNewTokens, d.RepetitionPenalty));
    }

    [Fact]
    public void TheExampleApiConfigReadsAsWritten()
    {
        var cfg = SftConfig.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "inference", "tiny_identity_lora.yaml")), workingDirectory: TestPaths.RepoRoot);
        // Made absolute only once demo.sh has created the folders.
        Assert.EndsWith(Path.Combine("demo", "tiny"), cfg.Model.ModelNameOrPath);
        Assert.EndsWith(Path.Combine("demo", "tiny-identity-lora"), Assert.Single(cfg.Model.AdapterNameOrPath));
        Assert.Equal("qwen", cfg.Data.Template);
        Assert.False(cfg.Generating.DoSample);
        Assert.Equal(128, cfg.Generating.MaxNewTokens);
        Assert.Empty(cfg.Notes);
    }

    [Fact]
    public void AContextLengthBeyondTheModelsPositionsIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ServedModel.FromConfig(Config(""), "x", 40000));
        Assert.Equal("context length must be between 2 and the model's max_position_embeddings (32768), got 40000", e.Message);
    }
}
