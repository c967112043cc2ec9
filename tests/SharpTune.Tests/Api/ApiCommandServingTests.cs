using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;

namespace SharpTune.Tests.Api;

/// <summary>
/// A real `sharptune api` process on the fixture's model folder: what its startup lines say about the addresses it
/// bound and who can reach them. Each run is stopped with SIGINT once it serves.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiCommandServingTests(ApiServerFixture fx)
{
    private const string Serving = "[sharptune] serving the OpenAI API at ";

    [PosixFact]
    public void ANameIsServedOnEveryAddressItResolvesToAndTheStartupLineListsThem()
    {
        var (exitCode, stderr) = ServeUntilReady("--host", "localhost", "--port", "0");

        Assert.True(exitCode == 0, $"exit code {exitCode}:\n{stderr}");
        string line = stderr.Split('\n').Single(l => l.StartsWith(Serving, StringComparison.Ordinal));
        string[] urls = line[Serving.Length..line.IndexOf(';')].Split(", ");
        var expected = System.Net.Dns.GetHostAddresses("localhost").Distinct().Select(a => a.ToString()).Order();
        Assert.Equal(expected, urls.Select(u => new Uri(u).Host.Trim('[', ']')).Order());
        Assert.All(urls, u => Assert.EndsWith("/v1", u));
        Assert.Contains("600 s per generation at most", line);
        Assert.DoesNotContain("warning", stderr);
        Assert.DoesNotContain("note: listening", stderr);
    }

    [PosixFact]
    public void EveryAddressWithoutAKeyIsAWarningAndWithAKeyANote()
    {
        var (_, withoutKey) = ServeUntilReady("--host", "0.0.0.0", "--port", "0");
        Assert.Contains("[sharptune] warning: listening on 0.0.0.0, not loopback, without an API key", withoutKey);

        var (exitCode, withKey) = ServeUntilReady("--host", "0.0.0.0", "--port", "0", "--api-key", "k", "--request-timeout", "30", "--max-tokens-limit", "7");
        Assert.True(exitCode == 0, $"exit code {exitCode}:\n{withKey}");
        Assert.DoesNotContain("warning", withKey);
        Assert.Contains("[sharptune] note: listening on 0.0.0.0, not loopback: anyone who can reach http://0.0.0.0:", withKey);
        Assert.Contains("and has the key can use the model", withKey);
        Assert.Contains("at most 7 tokens per completion", withKey);
        Assert.Contains("(API key required); 30 s per generation at most", withKey);
    }

    /// <summary>Runs the built apphost on the fixture's model, sends SIGINT once it serves, and returns its exit code and stderr.</summary>
    private (int ExitCode, string Stderr) ServeUntilReady(params string[] args) =>
        CliProcess.RunAndInterrupt(["api", "--model", fx.ModelDir, .. args], Serving, TimeSpan.FromMinutes(1),
            new Dictionary<string, string?> { ["API_HOST"] = null, ["API_PORT"] = null, ["API_KEY"] = null });
}
