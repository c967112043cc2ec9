using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Model;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Model;

/// <summary>
/// config.json values from a fault-and-abuse run that used to crash with messages naming nothing, or were accepted and
/// produced NaN logits: each is refused by <see cref="ModelConfig.Load"/> with one line naming the file and key.
/// </summary>
public sealed class ModelConfigValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string ConfigPath => _dir.File("config.json");

    private string LoadError(Action<JsonObject> edit)
    {
        var config = JsonNode.Parse(File.ReadAllText(TestPaths.Fixtures("qwen2-small-vocab", "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(ConfigPath, config.ToJsonString());
        var e = Assert.Throws<ModelFolderException>(() => ModelConfig.Load(ConfigPath));
        Assert.StartsWith(ConfigPath + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message[(ConfigPath.Length + 2)..];
    }

    [Fact]
    public void FixtureConfigLoads() => Assert.Equal(3, ModelConfig.Load(TestPaths.Fixtures("qwen2-small-vocab", "config.json")).NumLayers);

    [Theory]
    [InlineData("num_hidden_layers", 0, "'num_hidden_layers' must be at least 1, got 0")]
    [InlineData("vocab_size", 0, "'vocab_size' must be at least 1, got 0")]
    [InlineData("hidden_size", -48, "'hidden_size' must be at least 1, got -48")]
    [InlineData("intermediate_size", 0, "'intermediate_size' must be at least 1, got 0")]
    [InlineData("max_position_embeddings", 0, "'max_position_embeddings' must be at least 1, got 0")]
    [InlineData("max_position_embeddings", -5, "'max_position_embeddings' must be at least 1, got -5")]
    [InlineData("bos_token_id", -1, "'bos_token_id' must be at least 0, got -1")]
    public void IntegersOutOfRangeNameTheKey(string key, int value, string expected) =>
        Assert.Equal(expected, LoadError(c => c[key] = value));

    [Fact]
    public void EosTokenIdBeyondInt32NamesTheKey() =>
        Assert.Equal("'eos_token_id' must be an integer from 0 to 2147483647, got '1000000000000'",
            LoadError(c => c["eos_token_id"] = 1_000_000_000_000L));

    [Fact]
    public void EosTokenIdListEntriesAreChecked() =>
        Assert.Equal("'eos_token_id[1]' must be an integer from 0 to 2147483647, got '\"two\"'",
            LoadError(c => c["eos_token_id"] = new JsonArray(1, "two")));

    [Theory]
    [InlineData("rope_theta", 0.0, "'rope_theta' must be greater than 0, got 0")]
    [InlineData("rope_theta", -10000.0, "'rope_theta' must be greater than 0, got -10000")]
    [InlineData("rms_norm_eps", -1e-6, "'rms_norm_eps' must be at least 0, got -1E-06")]
    public void FloatsOutOfRangeNameTheKey(string key, double value, string expected) =>
        Assert.Equal(expected, LoadError(c => c[key] = value));

    [Theory]
    [InlineData("linear", 0.0, "'rope_scaling.factor' must be greater than 0, got 0")]
    [InlineData("linear", -2.0, "'rope_scaling.factor' must be greater than 0, got -2")]
    [InlineData("llama3", 0.0, "'rope_scaling.factor' must be greater than 0, got 0")]
    public void RopeScalingFactorMustBePositive(string type, double factor, string expected) =>
        Assert.Equal(expected, LoadError(c => c["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = type, ["factor"] = factor, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        }));

    [Fact]
    public void Llama3FrequencyFactorsMustDiffer() =>
        Assert.Equal("'rope_scaling.high_freq_factor' must be greater than low_freq_factor 4, got 4",
            LoadError(c => c["rope_scaling"] = new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 4.0, ["high_freq_factor"] = 4.0,
                ["original_max_position_embeddings"] = 8192,
            }));

    [Fact]
    public void LongStringValuesAreQuotedShort()
    {
        string message = LoadError(c => c["model_type"] = new string('x', 5000));
        Assert.Contains($"model_type '{new string('x', 60)}…' (5000 chars) is not supported", message);
        Assert.True(message.Length < 200);
    }

    [Fact]
    public void InvalidUtf8IsRefusedWithItsPosition()
    {
        byte[] good = File.ReadAllBytes(TestPaths.Fixtures("qwen2-small-vocab", "config.json"));
        int at = Encoding.UTF8.GetString(good).IndexOf("silu", StringComparison.Ordinal);
        byte[] bad = [.. good[..at], 0xC3, 0x28, .. good[(at + 2)..]];
        File.WriteAllBytes(ConfigPath, bad);
        var e = Assert.Throws<ModelFolderException>(() => ModelConfig.Load(ConfigPath));
        Assert.StartsWith($"{ConfigPath}: invalid UTF-8 at line ", e.Message);
    }

    [Fact]
    public void ConfigWithAByteOrderMarkLoads()
    {
        File.WriteAllBytes(ConfigPath, [.. "\uFEFF"u8, .. File.ReadAllBytes(TestPaths.Fixtures("qwen2-small-vocab", "config.json"))]);
        Assert.Equal(48, ModelConfig.Load(ConfigPath).HiddenSize);
    }

    [Fact]
    public void GenerationConfigTokenIdsAreReadThroughTheSameChecks()
    {
        // generation_config.json's eos ids go through the same reader as config.json's: out of range names file and key.
        var config = ModelConfig.Load(TestPaths.Fixtures("qwen2-small-vocab", "config.json"));
        string path = _dir.File("generation_config.json");
        File.WriteAllText(path, """{"eos_token_id": [2, 1000000000000]}""");
        var e = Assert.Throws<ModelFolderException>(() => SharpTune.Inference.GenerationOptions.FromModelFolder(_dir.Path, config));
        Assert.Equal($"{path}: 'eos_token_id[1]' must be an integer from 0 to 2147483647, got '1000000000000'", e.Message);
    }
}
