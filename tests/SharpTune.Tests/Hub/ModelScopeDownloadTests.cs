using System.Diagnostics;
using SharpTune.Hub;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Hub;

/// <summary>
/// Downloads from the loopback stand-in ModelScope (<see cref="LoopbackModelScope"/>) into a cache laid out as the
/// modelscope library lays it out: MODELSCOPE_CACHE/models/ORG/NAME/FILE, the files themselves, a '.' of NAME as
/// '___', partial files under models/._____temp/ORG/NAME. In the CLI collection because the training case sets
/// USE_MODELSCOPE_HUB, MODELSCOPE_DOMAIN and MODELSCOPE_CACHE for the in-process CLI.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ModelScopeDownloadTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IAsyncLifetime
{
    private const string Weights = "model.safetensors";
    private readonly TempDir cache = new();
    private LoopbackModelScope hub = null!;

    public Task InitializeAsync()
    {
        hub = new LoopbackModelScope(tiny.ModelDir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await hub.DisposeAsync();
        cache.Dispose();
    }

    private string Folder => Path.Combine(cache.Path, "models", "local-test-org", "tiny");
    private string Temporary => Path.Combine(cache.Path, "models", "._____temp", "local-test-org", "tiny");

    private HubSettings Settings(string? token = null, bool offline = false, string? endpoint = null) =>
        new(endpoint ?? hub.Endpoint, token, cache.Path, offline, HubKind.ModelScope);

    private string Download(HubSettings settings, string repoId = LoopbackModelScope.RepoId, string revision = "master", string[]? include = null) =>
        HubDownload.Snapshot(settings, "model", repoId, revision, include ?? [], [], TextWriter.Null);

    private string Error(HubSettings settings, string repoId = LoopbackModelScope.RepoId, string revision = "master")
    {
        var e = Assert.Throws<HubException>(() => Download(settings, repoId, revision));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private string[] Drain() => HubTestSupport.Drain(hub.Requests);

    private static bool IsData(string request) => request.Contains("/repo?", StringComparison.Ordinal);

    private void AssertServedFiles(string folder)
    {
        foreach (var (name, data) in hub.Files) Assert.Equal(data, File.ReadAllBytes(Path.Combine(folder, name)));
    }

    private Dictionary<string, string?> Environment(bool useModelScope, bool offline = false) => new()
    {
        ["USE_MODELSCOPE_HUB"] = useModelScope ? "1" : null, ["MODELSCOPE_DOMAIN"] = hub.Endpoint, ["MODELSCOPE_CACHE"] = cache.Path,
        ["MODELSCOPE_API_TOKEN"] = null, ["HF_HUB_OFFLINE"] = offline ? "1" : null,
        // Were the Hugging Face side asked by mistake, it would fail: nothing listens there.
        ["HF_ENDPOINT"] = "http://127.0.0.1:1", ["HF_HUB_CACHE"] = cache.File("hf"),
    };

    [Fact]
    public void TheCacheIsLaidOutAsModelscopeLaysItOutAndASecondDownloadFetchesNoData()
    {
        hub.Files["sub/notes.txt"] = "a file in a folder\n"u8.ToArray();
        string folder = Download(Settings(token: "ms_secret"));

        Assert.Equal(Folder, folder);
        AssertServedFiles(folder);
        Assert.Equal(hub.Files.Keys.Order(), Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f)).Order());
        Assert.Empty(Directory.GetFiles(Temporary, "*", SearchOption.AllDirectories));
        var requests = Drain();
        Assert.Contains($"GET /api/v1/models/{LoopbackModelScope.RepoId}/repo/files?Revision=master&Recursive=True range= auth=Bearer ms_secret", requests);
        Assert.Contains($"GET /api/v1/models/{LoopbackModelScope.RepoId}/repo?Revision=master&FilePath=sub%2Fnotes.txt range= auth=Bearer ms_secret", requests);
        Assert.Equal(hub.Files.Count, requests.Count(IsData));

        // Again: the listing only, each cached file checked against its size and sha256.
        Download(Settings(token: "ms_secret"));
        Assert.Equal([$"GET /api/v1/models/{LoopbackModelScope.RepoId}/repo/files?Revision=master&Recursive=True range= auth=Bearer ms_secret"], Drain());

        // Hugging Face's default branch asks for ModelScope's, as LLaMA-Factory maps it; a '.' in the name is masked as '___'.
        hub.AddRepo("local-test-org/tiny-0.5B", tiny.ModelDir);
        Assert.Equal(Path.Combine(cache.Path, "models", "local-test-org", "tiny-0___5B"), Download(Settings(), "local-test-org/tiny-0.5B", revision: "main"));
        Assert.All(Drain(), r => Assert.Contains("Revision=master&", r));
    }

    [Fact]
    public void TheCommandPicksModelScopeByHubOptionOrEnvironmentAndCopiesToALocalDir()
    {
        string localDir = cache.File("local");
        var result = Run(CliProcess.StartInfo(["download", LoopbackModelScope.RepoId, "--hub", "modelscope", "--include", "*.json", "--local-dir", localDir], Environment(useModelScope: false)));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(Path.GetFullPath(localDir), result.Stdout.Trim());
        string[] expected = hub.Files.Keys.Where(n => n.EndsWith(".json", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(expected, Directory.GetFiles(Folder).Select(Path.GetFileName).Order());
        Assert.Equal(expected, Directory.GetFiles(localDir).Select(Path.GetFileName).Order());
        Assert.Matches(@"Fetching \d+ files \[#+\] 100% .* in \d\d:\d\d", result.Stderr);

        result = Run(CliProcess.StartInfo(["download", LoopbackModelScope.RepoId], Environment(useModelScope: true)));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(Folder, result.Stdout.Trim());
        AssertServedFiles(Folder);

        // --hub hf overrides USE_MODELSCOPE_HUB: the Hugging Face endpoint is asked, and here nothing listens there.
        result = Run(CliProcess.StartInfo(["download", LoopbackModelScope.RepoId, "--hub", "hf"], Environment(useModelScope: true)));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("is not in the Hugging Face cache", result.Stderr);
    }

    [Fact]
    public void AFileThatDoesNotMatchItsSha256IsFetchedAgain()
    {
        Download(Settings());
        // Same size, other bytes: only the sha256 tells; that file alone is fetched again.
        string weights = Path.Combine(Folder, Weights);
        byte[] damaged = File.ReadAllBytes(weights);
        damaged[^1] ^= 0xff;
        File.WriteAllBytes(weights, damaged);
        Drain();
        Download(Settings());
        Assert.Equal([$"/repo?Revision=master&FilePath={Weights}"], Drain().Where(IsData).Select(r => r[r.IndexOf("/repo?", StringComparison.Ordinal)..r.IndexOf(" range=", StringComparison.Ordinal)]));
        AssertServedFiles(Folder);

        // Bytes that arrive damaged once are discarded and fetched afresh; damaged every time, the download stops
        // with the reason and the good file stays where it was.
        File.Delete(weights);
        hub.CorruptServes = 1;
        Download(Settings());
        AssertServedFiles(Folder);
        File.WriteAllBytes(weights, damaged);
        hub.CorruptServes = 2;
        Assert.Equal($"'{Weights}' of '{LoopbackModelScope.RepoId}' does not match its sha256 {LoopbackHub.Sha256(hub.Files[Weights])} after a fresh download; the file was discarded",
            Error(Settings()));
        Assert.Equal(damaged, File.ReadAllBytes(weights));
        Assert.False(File.Exists(Path.Combine(Temporary, Weights)));
    }

    [Fact]
    public void APartialFileInTheTemporaryFolderIsResumedWithRange()
    {
        byte[] weights = hub.Files[Weights];
        Directory.CreateDirectory(Temporary);
        File.WriteAllBytes(Path.Combine(Temporary, Weights), weights[..(weights.Length / 2)]);
        Download(Settings());
        Assert.Contains(Drain(), r => r.Contains($"FilePath={Weights} range=bytes={weights.Length / 2}-", StringComparison.Ordinal));
        AssertServedFiles(Folder);
        Assert.False(File.Exists(Path.Combine(Temporary, Weights)));
    }

    [Fact]
    public void OfflineOrUnreachableUsesTheCacheOnly()
    {
        Assert.Equal($"'{LoopbackModelScope.RepoId}' at revision 'master' is not in the ModelScope cache ({cache.Path}), and HF_HUB_OFFLINE is set, so nothing is downloaded",
            Error(Settings(offline: true)));
        Assert.StartsWith($"'{LoopbackModelScope.RepoId}' at revision 'master' is not in the ModelScope cache ({cache.Path}), and cannot reach http://127.0.0.1:1 (",
            Error(Settings(endpoint: "http://127.0.0.1:1")));
        Download(Settings());
        Drain();
        Assert.Equal(Folder, Download(Settings(offline: true)));
        Assert.Equal(Folder, Download(Settings(endpoint: "http://127.0.0.1:1")));
        Assert.Empty(Drain());
    }

    [Fact]
    public void ModelScopesErrorsAreOneLineWithItsMessage()
    {
        Assert.Equal($"model 'local-test-org/other' or its revision 'master' was not found at {hub.Endpoint} (ModelScope says: The model does not exist or the revision is invalid)",
            Error(Settings(), repoId: "local-test-org/other"));
        Assert.StartsWith($"model '{LoopbackModelScope.RepoId}' or its revision 'v9' was not found", Error(Settings(), revision: "v9"));
        hub.RequiredToken = "ms_right";
        Assert.Equal($"access to '{LoopbackModelScope.RepoId}' at {hub.Endpoint} was refused (HTTP 401): if it is private, set MODELSCOPE_API_TOKEN to a token with access (the token sent was refused) (ModelScope says: Unauthorized: no permission to access the model)",
            Error(Settings(token: "ms_wrong")));
        Assert.Equal(Folder, Download(Settings(token: "ms_right")));
        Assert.Equal("downloading a space repository from ModelScope is not supported: only models and datasets are",
            Assert.Throws<HubException>(() => HubDownload.Snapshot(Settings(), "space", LoopbackModelScope.RepoId, "master", [], [], TextWriter.Null)).Message);
    }

    [Fact]
    public void WithUseModelScopeHubAModelIdTrainsFromModelScope() => WithEnvironment(() =>
    {
        string output = tiny.PathFor("from-loopback-modelscope");
        TinyModelFixture.Train(tiny.WriteConfig("from-loopback-modelscope", output, ("model_name_or_path", LoopbackModelScope.RepoId), ("max_steps", 1), ("save_steps", 10)));
        using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
            Assert.Equal(LoopbackModelScope.RepoId, config.RootElement.GetProperty("base_model_name_or_path").GetString());
        AssertServedFiles(Folder);
        Assert.Contains(Drain(), IsData);

        // The chat side resolves ids the same way: from the cache alone when offline.
        System.Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        Assert.Equal(TinyModelFixture.Generate(tiny.ModelDir, "Hi", output), TinyModelFixture.Generate(LoopbackModelScope.RepoId, "Hi", output));
        Assert.Empty(Drain());
    });

    /// <summary>Sets the loopback ModelScope's variables for the in-process CLI (this collection runs alone) and restores them after.</summary>
    private void WithEnvironment(Action body) => HubTestSupport.WithVariables(Environment(useModelScope: true), body);

    private static CliResult Run(ProcessStartInfo start) => HubDownloadTests.Run(start);
}
