namespace SharpTune.Tests.Cli;

/// <summary>`sharptune api`'s argument and config errors (serving itself is tested in tests/Api on a live server).</summary>
[Collection(CliCollection.Name)]
public sealed class ApiCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharptune-api-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Yaml(string text)
    {
        string path = Path.Combine(_dir, "api.yaml");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void NeedsAModelOrAConfig()
    {
        var r = CliRunner.Run("api");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: give a model folder (--model DIR) or a config file\n", r.Stderr.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void AConfigKeyTypoGetsADidYouMean()
    {
        var r = CliRunner.Run("api", Yaml($"model_name_or_path: {_dir}\ntemprature: 0.5\n"));
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: unknown key 'temprature' (did you mean 'temperature'?)", r.Stderr);
    }

    [Fact]
    public void AConfigAndModelOptionsDoNotMix()
    {
        var r = CliRunner.Run("api", Yaml("model_name_or_path: x\n"), "--model", _dir);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: give either a config file or --model/--adapter, not both\n", r.Stderr.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void AMissingModelFolderIsNamed()
    {
        string missing = Path.Combine(_dir, "no-model");
        var r = CliRunner.Run("api", "--model", missing);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(missing, r.Stderr);
    }

    [Theory]
    [InlineData("--host", "256.1.1.1", "--host '256.1.1.1' is not a valid IPv4 address")]
    [InlineData("--request-timeout", "0", "--request-timeout must be more than 0")]
    [InlineData("--max-tokens-limit", "0", "--max-tokens-limit must be at least 1")]
    [InlineData("--cors-origin", "app.example", "--cors-origin 'app.example' is not an origin")]
    [InlineData("--allowed-host", "http://api.example:80", "--allowed-host 'http://api.example:80' is not a host name")]
    public void ABadServingOptionIsNamedBeforeTheModelLoads(string option, string value, string message)
    {
        // The model folder does not exist: the option's error comes first.
        var r = CliRunner.Run("api", "--model", Path.Combine(_dir, "no-model"), option, value);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"error: {message}", r.Stderr);
    }
}
