using System.Diagnostics;
using SharpTune.Hub;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Hub;

/// <summary>
/// Downloads from the loopback stand-in Hub (<see cref="LoopbackHub"/>) into a cache laid out as huggingface_hub lays
/// it out (its file_download.py and _snapshot_download.py): models--ORG--NAME/{blobs/ETAG, snapshots/COMMIT/FILE as
/// a relative symlink to ../../blobs/ETAG, refs/main, trees/COMMIT.json}. In the CLI collection because the
/// training case sets HF_ENDPOINT and HF_HUB_CACHE for the in-process CLI.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class HubDownloadTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IAsyncLifetime
{
    private const string Weights = "model.safetensors";
    private readonly TempDir cache = new();
    private LoopbackHub hub = null!;

    public Task InitializeAsync()
    {
        hub = new LoopbackHub(tiny.ModelDir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await hub.DisposeAsync();
        cache.Dispose();
    }

    private string Repo => Path.Combine(cache.Path, "models--local-test-org--tiny");
    private string Snapshot => Path.Combine(Repo, "snapshots", LoopbackHub.Commit);

    private HubSettings Settings(string? token = null, bool offline = false) => new(hub.Endpoint, token, cache.Path, offline);

    private string Download(HubSettings settings, string revision = "main", string[]? include = null) =>
        HubDownload.Snapshot(settings, "model", LoopbackHub.RepoId, revision, include ?? [], [], TextWriter.Null);

    private string Error(HubSettings settings, string repoId = LoopbackHub.RepoId, string revision = "main")
    {
        var e = Assert.Throws<HubException>(() => HubDownload.Snapshot(settings, "model", repoId, revision, [], [], TextWriter.Null));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private string[] Drain() => HubTestSupport.Drain(hub.Requests);

    private void AssertServedFiles()
    {
        foreach (var (name, data) in hub.Files) Assert.Equal(data, File.ReadAllBytes(Path.Combine(Snapshot, name)));
    }

    private Dictionary<string, string?> Environment(bool offline = false) => new()
    {
        ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache.Path, ["HF_TOKEN"] = null, ["HF_HOME"] = cache.File("home"),
        ["HF_HUB_OFFLINE"] = offline ? "1" : null,
    };

    [Fact]
    public void TheCacheIsLaidOutAsHuggingfaceHubLaysItOutAndTheTokenStaysOnTheHub()
    {
        string snapshot = Download(Settings(token: "hf_secret"));

        Assert.Equal(Snapshot, snapshot);
        AssertServedFiles();
        Assert.Equal(LoopbackHub.Commit, File.ReadAllText(Path.Combine(Repo, "refs", "main")));
        Assert.True(File.Exists(Path.Combine(Repo, "trees", LoopbackHub.Commit + ".json")));
        foreach (var (name, data) in hub.Files)
        {
            var entry = new FileInfo(Path.Combine(snapshot, name));
            Assert.Equal("../../blobs/" + LoopbackHub.Etag(name, data), entry.LinkTarget);
            Assert.Equal(data, File.ReadAllBytes(Path.Combine(Repo, "blobs", LoopbackHub.Etag(name, data))));
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(Repo, "blobs"), "*.incomplete"));

        var requests = Drain();
        Assert.Contains(requests, r => r.Contains($"GET /api/models/{LoopbackHub.RepoId}/revision/main", StringComparison.Ordinal) && r.EndsWith("auth=Bearer hf_secret", StringComparison.Ordinal));
        var cdn = requests.Where(r => r.StartsWith("127.0.0.2", StringComparison.Ordinal)).ToList();
        Assert.Single(cdn);
        Assert.EndsWith("auth=", cdn[0]);

        // Again at main: the file list only, no file; at the commit, whose list is cached: no request at all.
        Download(Settings(token: "hf_secret"));
        Assert.Equal([$"GET /api/models/{LoopbackHub.RepoId}/revision/main"], Drain().Select(r => r[(r.IndexOf(' ') + 1)..r.IndexOf(" range=", StringComparison.Ordinal)]));
        Download(Settings(), revision: LoopbackHub.Commit);
        Assert.Empty(Drain());
    }

    [Fact]
    public void TheCommandDownloadsWhatIncludeAsksShowsProgressAndCopiesToALocalDir()
    {
        string localDir = cache.File("local");
        var start = CliProcess.StartInfo(["download", LoopbackHub.RepoId, "--include", "*.json", "--exclude", "tokenizer*", "--local-dir", localDir], Environment());
        var result = Run(start);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(Path.GetFullPath(localDir), result.Stdout.Trim());
        string[] expected = hub.Files.Keys.Where(n => n.EndsWith(".json", StringComparison.Ordinal) && !n.StartsWith("tokenizer", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(expected, Directory.GetFiles(Snapshot).Select(Path.GetFileName).Order());
        Assert.Equal(expected, Directory.GetFiles(localDir).Select(Path.GetFileName).Order());
        Assert.Equal(hub.Files["config.json"], File.ReadAllBytes(Path.Combine(localDir, "config.json")));
        Assert.Matches(@"Fetching \d+ files \[#+\] 100% .* in \d\d:\d\d", result.Stderr);
    }

    [Fact]
    public void ADatasetRepositoryGoesToDatasetsInTheCache()
    {
        hub.AddRepo("local-test-org/identity", TinyModelFixture.BundledData, repoType: "dataset");
        var result = Run(CliProcess.StartInfo(["download", "local-test-org/identity", "--repo-type", "dataset"], Environment()));
        Assert.True(result.ExitCode == 0, result.Stderr);
        string snapshot = Path.Combine(cache.Path, "datasets--local-test-org--identity", "snapshots", LoopbackHub.Commit);
        Assert.Equal(snapshot, result.Stdout.Trim());
        foreach (string file in Directory.GetFiles(TinyModelFixture.BundledData))
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Combine(snapshot, Path.GetFileName(file))));
    }

    [Fact]
    public void AKilledDownloadLeavesAnIncompleteBlobAndResumesWithRange()
    {
        byte[] weights = hub.Files[Weights];
        long half = weights.Length / 2;
        hub.StallAfter = half;
        string incomplete = Path.Combine(Repo, "blobs", LoopbackHub.Sha256(weights) + ".incomplete");
        using (var process = Process.Start(CliProcess.StartInfo(["download", LoopbackHub.RepoId], Environment()))!)
        {
            var clock = Stopwatch.StartNew();
            while (!(File.Exists(incomplete) && new FileInfo(incomplete).Length == half))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the download never reached the stall");
                Thread.Sleep(20);
            }
            process.Kill();
            process.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(Snapshot, Weights)));
        Assert.Equal(half, new FileInfo(incomplete).Length);

        hub.StallAfter = null;
        Drain();
        var result = Run(CliProcess.StartInfo(["download", LoopbackHub.RepoId], Environment()));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains(Drain(), r => r.StartsWith("127.0.0.2", StringComparison.Ordinal) && r.Contains($"range=bytes={half}-", StringComparison.Ordinal));
        AssertServedFiles();
        Assert.False(File.Exists(incomplete));
    }

    [Fact]
    public void AServerThatIgnoresRangeRestartsTheFile()
    {
        byte[] weights = PlantIncomplete(corrupt: false);
        hub.IgnoreRange = true;
        Download(Settings());
        // One request: the 200 answer to the ranged request is taken from its first byte, not appended to the part.
        var cdn = Drain().Where(r => r.StartsWith("127.0.0.2", StringComparison.Ordinal)).ToList();
        Assert.Single(cdn);
        Assert.Contains($"range=bytes={weights.Length / 2}-", cdn[0]);
        AssertServedFiles();
    }

    [Fact]
    public void ACorruptedPartOrBlobIsFetchedAgain()
    {
        PlantIncomplete(corrupt: true);
        Download(Settings());
        AssertServedFiles();
        Assert.Equal(2, Drain().Count(r => r.StartsWith("127.0.0.2", StringComparison.Ordinal)));

        // A damaged blob (cut short) is noticed by its size against the listing and downloaded again.
        string blob = Path.Combine(Repo, "blobs", LoopbackHub.Sha256(hub.Files[Weights]));
        using (var stream = new FileStream(blob, FileMode.Open)) stream.SetLength(10);
        Download(Settings());
        AssertServedFiles();
    }

    /// <summary>Leaves the first half of the weights (or as many wrong bytes) as a killed download would.</summary>
    private byte[] PlantIncomplete(bool corrupt)
    {
        byte[] weights = hub.Files[Weights];
        Directory.CreateDirectory(Path.Combine(Repo, "blobs"));
        byte[] part = weights[..(weights.Length / 2)];
        if (corrupt) Array.Fill(part, (byte)0x5a);
        File.WriteAllBytes(Path.Combine(Repo, "blobs", LoopbackHub.Sha256(weights) + ".incomplete"), part);
        return weights;
    }

    [Fact]
    public void EveryErrorIsOneLineAndNothingHalfWrittenLandsInTheSnapshot()
    {
        hub.Gated = true;
        Assert.Equal($"'{LoopbackHub.RepoId}' is a gated repository: accept its licence at {hub.Endpoint}/{LoopbackHub.RepoId} and set HF_TOKEN to a token of that account (the Hub says: Access to model {LoopbackHub.RepoId} is restricted. You must have access to it and be authenticated to access it.)",
            Error(Settings()));
        hub.Gated = false;

        hub.RequiredToken = "hf_right";
        Assert.StartsWith($"repository '{LoopbackHub.RepoId}' was not found at {hub.Endpoint}, or it is private or gated: check the id, or set HF_TOKEN to a token with access (the token sent was refused)",
            Error(Settings(token: "hf_wrong")));
        hub.RequiredToken = null;

        Assert.StartsWith($"repository 'local-test-org/other' was not found at {hub.Endpoint}", Error(Settings(), repoId: "local-test-org/other"));
        Assert.StartsWith($"revision 'v9' of '{LoopbackHub.RepoId}' was not found at {hub.Endpoint}", Error(Settings(), revision: "v9"));

        using (var client = new HubClient(Settings()))
            Assert.Equal($"file 'absent.bin' is not in '{LoopbackHub.RepoId}' at revision '{LoopbackHub.Commit}' (the Hub says: Entry not found)",
                Assert.Throws<HubException>(() => client.FileMetadataAsync("model", LoopbackHub.RepoId, LoopbackHub.Commit, "absent.bin", default).GetAwaiter().GetResult()).Message);

        hub.AnswerHtml = 200;
        Assert.Contains("returned an HTML page instead of the Hub's answer: is HF_ENDPOINT", Error(Settings()));
        hub.AnswerHtml = 502;
        Assert.Equal($"HTTP 502 from {hub.Endpoint}/api/models/{LoopbackHub.RepoId}/revision/main?blobs=true; the answer was an HTML page: is HF_ENDPOINT a Hugging Face Hub or mirror?", Error(Settings()));
        hub.AnswerHtml = null;

        Assert.StartsWith($"'{LoopbackHub.RepoId}' at revision 'main' is not in the Hugging Face cache ({cache.Path}), and cannot reach http://127.0.0.1:1 (",
            Error(new HubSettings("http://127.0.0.1:1", null, cache.Path, false)));

        // Disk full: the blob's partial file is a link to /dev/full, where every write fails with ENOSPC.
        Directory.CreateDirectory(Path.Combine(Repo, "blobs"));
        File.CreateSymbolicLink(Path.Combine(Repo, "blobs", LoopbackHub.Sha256(hub.Files[Weights]) + ".incomplete"), "/dev/full");
        Assert.StartsWith($"disk full while writing '{Weights}' of '{LoopbackHub.RepoId}'", Error(Settings()));
        Assert.False(File.Exists(Path.Combine(Snapshot, Weights)));
    }

    [Fact]
    public void OfflineUsesTheCacheOnlyAndSaysWhenItLacksTheModel()
    {
        Assert.Equal($"'{LoopbackHub.RepoId}' at revision 'main' is not in the Hugging Face cache ({cache.Path}), and HF_HUB_OFFLINE is set, so nothing is downloaded",
            Error(Settings(offline: true)));
        Download(Settings(), include: ["config.json"]);
        Drain();
        Assert.Equal(Snapshot, Download(Settings(offline: true), include: ["config.json"]));
        Assert.StartsWith($"'{LoopbackHub.RepoId}' at revision 'main' is only partly in the Hugging Face cache", Error(Settings(offline: true)));
        Assert.Empty(Drain());
    }

    [Fact]
    public void AHubIdTrainsFromTheHubOnFirstUseAndFromTheCacheAfter() => WithEnvironment(() =>
    {
        string output = tiny.PathFor("from-loopback-hub");
        TinyModelFixture.Train(tiny.WriteConfig("from-loopback-hub", output, ("model_name_or_path", LoopbackHub.RepoId), ("max_steps", 1), ("save_steps", 10)));
        using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
            Assert.Equal(LoopbackHub.RepoId, config.RootElement.GetProperty("base_model_name_or_path").GetString());
        AssertServedFiles();

        // The adapter from the Hub too (--adapter ID), then both from the cache alone.
        hub.AddRepo("local-test-org/tiny-lora", output);
        string expected = TinyModelFixture.Generate(tiny.ModelDir, "Hi", output);
        Assert.Equal(expected, TinyModelFixture.Generate(LoopbackHub.RepoId, "Hi", "local-test-org/tiny-lora"));
        Drain();
        System.Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        Assert.Equal(expected, TinyModelFixture.Generate(LoopbackHub.RepoId, "Hi", "local-test-org/tiny-lora"));
        Assert.Empty(Drain());
    });

    [Fact]
    public void TheQwenExampleConfigTrainsFromItsHubId() => WithEnvironment(() =>
    {
        // The example names Qwen/Qwen2.5-0.5B-Instruct as LLaMA-Factory's do; the loopback Hub serves the tiny model under that id.
        hub.AddRepo("Qwen/Qwen2.5-0.5B-Instruct", tiny.ModelDir);
        string output = tiny.PathFor("qwen-example-from-hub");
        TinyModelFixture.Train(Path.Combine(TestPaths.RepoRoot, "examples", "train_lora", "qwen2.5_lora_sft.yaml"),
            "dataset=identity", $"dataset_dir={TinyModelFixture.BundledData}", "cutoff_len=64", "max_samples=8", "max_steps=1",
            "val_size=0", "eval_strategy=no", "plot_loss=false", $"output_dir={output}");
        using var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json"));
        Assert.Equal("Qwen/Qwen2.5-0.5B-Instruct", config.RootElement.GetProperty("base_model_name_or_path").GetString());
        Assert.True(Directory.Exists(Path.Combine(cache.Path, "models--Qwen--Qwen2.5-0.5B-Instruct", "snapshots", LoopbackHub.Commit)));
    });

    [Fact]
    public void APartlyCachedModelIsCompletedAndThenNeedsNoRequest()
    {
        Download(Settings(), include: ["config.json"]);
        Assert.StartsWith($"'{LoopbackHub.RepoId}' at revision 'main' is only partly in the Hugging Face cache",
            Assert.Throws<HubException>(() => HubDownload.ResolveModel(LoopbackHub.RepoId, "main", cache.Path, Settings(offline: true), TextWriter.Null)).Message);

        Assert.Equal((Snapshot, LoopbackHub.RepoId), HubDownload.ResolveModel(LoopbackHub.RepoId, "main", cache.Path, Settings(), TextWriter.Null));
        AssertServedFiles();
        Drain();
        Assert.Equal((Snapshot, LoopbackHub.RepoId), HubDownload.ResolveModel(LoopbackHub.RepoId, "main", cache.Path, Settings(), TextWriter.Null));
        Assert.Empty(Drain());
    }

    [Fact]
    public void TheTokenFileServesWhenHfTokenIsUnset()
    {
        hub.RequiredToken = "hf_from_file";
        Directory.CreateDirectory(cache.File("home"));
        File.WriteAllText(Path.Combine(cache.File("home"), "token"), "hf_from_file\n");
        var result = Run(CliProcess.StartInfo(["download", LoopbackHub.RepoId, "--include", "config.json"], Environment()));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(hub.Files["config.json"], File.ReadAllBytes(Path.Combine(Snapshot, "config.json")));
    }

    /// <summary>Paths and patterns with what Python's fnmatch (huggingface_hub's filter_repo_objects) selects, computed by Python 3.</summary>
    [Theory]
    [InlineData(new[] { "*.json" }, new string[0], new[] { "config.json", "sub/dir/a.json", "tokenizer.json" })]
    [InlineData(new[] { "sub/" }, new string[0], new[] { "sub/dir/a.json" })]
    [InlineData(new[] { "model-0000[1-2]-of-*.safetensors" }, new string[0], new[] { "model-00001-of-00002.safetensors" })]
    [InlineData(new[] { "[!t]*.json" }, new string[0], new[] { "config.json", "sub/dir/a.json" })]
    [InlineData(new[] { "?EADME.md" }, new string[0], new[] { "README.md" })]
    [InlineData(new[] { "original/*", "*.md" }, new string[0], new[] { "README.md", "original/consolidated.pth" })]
    [InlineData(new[] { "*.json" }, new[] { "tokenizer*" }, new[] { "config.json", "sub/dir/a.json" })]
    public void IncludeAndExcludeMatchAsFnmatch(string[] include, string[] exclude, string[] expected)
    {
        string[] paths = ["config.json", "model-00001-of-00002.safetensors", "sub/dir/a.json", "tokenizer.json", "README.md", "original/consolidated.pth", "Tokenizer.JSON"];
        Assert.Equal(expected.Order(), HubGlob.Filter(paths, include, exclude).Order());
    }

    /// <summary>Sets the loopback Hub's variables for the in-process CLI (this collection runs alone) and restores them after.</summary>
    private void WithEnvironment(Action body) => HubTestSupport.WithVariables(Environment(), body);

    internal static CliResult Run(ProcessStartInfo start)
    {
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "sharptune download did not exit within a minute");
        return new CliResult(process.ExitCode, stdout, stderr.Result);
    }
}
