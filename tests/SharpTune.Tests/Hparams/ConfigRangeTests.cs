using SharpTune.Hparams;

namespace SharpTune.Tests.Hparams;

/// <summary>Values from a fault-and-abuse run that used to fail deep inside training with a message naming nothing.</summary>
public sealed class ConfigRangeTests
{
    private const string Model = "model_name_or_path: some-model\n";

    private static string Error(string yaml, params string[] overrides) =>
        Assert.Throws<ConfigException>(() => SftConfig.Parse(yaml, overrides, Path.GetTempPath())).Message;

    [Fact]
    public void HugeLoraRankIsRefusedNamingTheKeyAndLine() =>
        // 10^9 used to overflow the LoRA matrix sizes ("Arithmetic operation resulted in an overflow.").
        Assert.Equal("lora_rank: must be at most 32768, got 1000000000 (line 2 of config)", Error(Model + "lora_rank: 1000000000"));

    [Fact]
    public void HugeLoraRankOverrideNamesTheOverride() =>
        Assert.Equal("lora_rank: must be at most 32768, got 1000000000 (command-line override 'lora_rank=1000000000')",
            Error(Model, "lora_rank=1000000000"));

    [Fact]
    public void LoraRankAtTheBoundIsAccepted() =>
        Assert.Equal(FinetuningArguments.MaxLoraRank, SftConfig.Parse(Model + "lora_rank: 32768", [], Path.GetTempPath()).Finetuning.LoraRank);

    [Fact]
    public void LongValuesInErrorsAreQuotedShort()
    {
        string value = new string('9', 61) + "x";
        Assert.Equal($"lora_rank: expected an integer, got '{value[..60]}…' (62 chars) (line 2 of config)", Error(Model + "lora_rank: " + value));
    }

    [Fact]
    public void LongUnknownKeysAndOverridesAreQuotedShort()
    {
        string key = new string('k', 100);
        Assert.Equal($"unknown key '{new string('k', 60)}…' (100 chars) (line 2 of config)", Error(Model + key + ": 1"));
        string text = "lora_rank=" + new string('8', 100);
        Assert.EndsWith($"(command-line override '{text[..60]}…' (110 chars))", Error(Model, text));
    }
}
