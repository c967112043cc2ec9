using System.Text.Json.Nodes;
using SharpTune.Peft.Lora;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Peft;

/// <summary>
/// adapter_config.json values of the wrong type or range used to surface as "The requested operation requires an
/// element of type..." or an invalid format, naming nothing; each now names the file and the key.
/// </summary>
public sealed class AdapterConfigValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string ConfigPath => _dir.File(LoraConfig.FileName);

    private string LoadError(Action<JsonObject> edit)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(LoraTestFolders.Adapter, LoraConfig.FileName)))!.AsObject();
        edit(config);
        File.WriteAllText(ConfigPath, config.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => LoraConfig.Load(_dir.Path));
        Assert.StartsWith(ConfigPath + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message[(ConfigPath.Length + 2)..];
    }

    [Fact]
    public void FixtureAdapterConfigLoads() => Assert.True(LoraConfig.Load(LoraTestFolders.Adapter).Rank > 0);

    [Fact]
    public void AlphaThatIsNotANumberNamesTheKey() =>
        Assert.Equal("'lora_alpha' must be a number, got '\"x\"'", LoadError(c => c["lora_alpha"] = "x"));

    [Fact]
    public void RankThatIsNotAnIntegerNamesTheKey() =>
        Assert.Equal("'r' must be an integer from 1 to 2147483647, got '8.5'", LoadError(c => c["r"] = 8.5));

    [Fact]
    public void ZeroRankIsRefused() =>
        Assert.Equal("'r' must be at least 1, got 0", LoadError(c => c["r"] = 0));

    [Fact]
    public void FlagThatIsNotABooleanNamesTheKey() =>
        Assert.Equal("'use_rslora' must be true or false", LoadError(c => c["use_rslora"] = "yes"));

    [Fact]
    public void NegativeDropoutIsRefused() =>
        Assert.Equal("'lora_dropout' must be at least 0, got -0.1", LoadError(c => c["lora_dropout"] = -0.1));

    [Fact]
    public void TargetModuleThatIsNotAStringNamesTheKey() =>
        Assert.Equal("'target_modules' holds a number, not a module name", LoadError(c => c["target_modules"] = new JsonArray("q_proj", 3)));

    [Fact]
    public void LongPeftTypeIsQuotedShort() =>
        Assert.Equal($"peft_type is '{new string('P', 60)}…' (1000 chars); only LORA adapters are supported",
            LoadError(c => c["peft_type"] = new string('P', 1000)));

    [Fact]
    public void AdapterConfigWithAByteOrderMarkLoads()
    {
        File.WriteAllBytes(ConfigPath, [.. "\uFEFF"u8, .. File.ReadAllBytes(Path.Combine(LoraTestFolders.Adapter, LoraConfig.FileName))]);
        Assert.Equal(LoraConfig.Load(LoraTestFolders.Adapter).Rank, LoraConfig.Load(_dir.Path).Rank);
    }
}
