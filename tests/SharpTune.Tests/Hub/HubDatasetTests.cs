using SharpTune.Data;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Data;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Hub;

/// <summary>
/// <c>hf_hub_url</c> datasets from the loopback stand-in Hub: the data files of the repository (under
/// <c>folder</c>/<c>subset</c>) land in the Hugging Face cache, splits come from file names as datasets resolves them,
/// the records train as their local JSON originals do, and a second load reads the cache alone. In the CLI collection
/// because the in-process loads read HF_ENDPOINT and HF_HUB_CACHE from the process environment.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class HubDatasetTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IAsyncLifetime
{
    private const string DataRepo = "local-test-org/chat-data";
    private static readonly string DemoDir = HubTestSupport.DemoDir;
    private readonly TempDir cache = new();
    private readonly DataDir dir = new();
    private LoopbackHub hub = null!;

    private const string Registry = """
        {
          "hub_alpaca": {"hf_hub_url": "local-test-org/chat-data", "subset": "alpaca"},
          "hub_alpaca_test": {"hf_hub_url": "local-test-org/chat-data", "subset": "alpaca", "split": "test"},
          "hub_alpaca_validation": {"hf_hub_url": "local-test-org/chat-data", "subset": "alpaca", "split": "validation"},
          "hub_chat": {"hf_hub_url": "local-test-org/chat-data", "folder": "sharegpt", "formatting": "sharegpt",
                       "columns": {"messages": "conversations", "tools": "tools"}}
        }
        """;

    public Task InitializeAsync()
    {
        hub = new LoopbackHub(tiny.ModelDir);
        var files = HubTestSupport.ChatDataFiles();
        files[".gitattributes"] = "*.parquet filter=lfs diff=lfs merge=lfs -text\n"u8.ToArray();
        files["sharegpt/dataset_info.json"] = "{}"u8.ToArray();
        hub.AddRepo(DataRepo, files, "dataset");
        dir.Info(Registry);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await hub.DisposeAsync();
        cache.Dispose();
        dir.Dispose();
    }

    private Dictionary<string, string?> Environment(bool offline = false) => new()
    {
        ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache.Path, ["HF_TOKEN"] = null, ["HF_HOME"] = cache.File("home"),
        ["HF_HUB_OFFLINE"] = offline ? "1" : null,
    };

    private T WithEnvironment<T>(Func<T> body, bool offline = false) => HubTestSupport.WithVariables(Environment(offline), body);

    private string[] Drain() => HubTestSupport.Drain(hub.Requests);

    [Fact]
    public void SplitsAndSubsetsLoadAsTheirLocalOriginalsThenFromTheCacheAlone()
    {
        var alpaca = HubTestSupport.Load(DemoDir, "alpaca_en_demo", maxSamples: 18).Train;
        var toolCalls = HubTestSupport.Load(DemoDir, "glaive_toolcall_en_demo", maxSamples: 10).Train;

        HubTestSupport.AssertSameExamples(alpaca.Take(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_alpaca")));
        HubTestSupport.AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_alpaca_test")));
        HubTestSupport.AssertSameExamples(toolCalls, WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_chat")));

        string snapshot = Path.Combine(cache.Path, "datasets--local-test-org--chat-data", "snapshots", LoopbackHub.Commit);
        Assert.Equal(["alpaca/test.jsonl", "alpaca/train.jsonl", "sharegpt/data/train-00000-of-00001.parquet", "sharegpt/dataset_info.json"],
            Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(snapshot, f)).Order(StringComparer.Ordinal));
        Assert.Contains(hub.Requests, r => r.Contains(" GET /blobs/", StringComparison.Ordinal)); // the parquet file came through the CDN, as LFS files do

        Drain();
        HubTestSupport.AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_alpaca_test"), offline: true));
        HubTestSupport.AssertSameExamples(toolCalls, WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_chat"), offline: true));
        Assert.Empty(Drain());
    }

    [Fact]
    public void AMissingSplitNamesTheSplitsTheRepositoryHas()
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_alpaca_validation")));
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset 'hub_alpaca_validation': split 'validation' is not in {DataRepo} folder 'alpaca' (its files hold: train, test)", e.Message);
    }

    [Fact]
    public void NotInTheCacheWhileOfflineNamesTheDatasetAndTheCache()
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => HubTestSupport.Load(dir.Path, "hub_alpaca"), offline: true));
        Assert.StartsWith($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset 'hub_alpaca': '{DataRepo}' at revision 'main' is not in the Hugging Face cache ({cache.Path})", e.Message);
    }

    [Fact]
    public void SharptuneTrainsOnAHubDatasetThenOfflineFromTheCache()
    {
        foreach (bool offline in new[] { false, true })
        {
            string output = tiny.PathFor($"hub-dataset-{offline}");
            string config = tiny.WriteConfig($"hub-dataset-{offline}", output, ("dataset", "hub_chat,hub_alpaca"), ("dataset_dir", dir.Path),
                ("cutoff_len", 96), ("max_steps", 2), ("save_steps", 10));
            Drain();
            var result = CliProcess.Run(["train", config], Environment(offline));
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")), result.Stderr);
            Assert.Equal(2, TinyModelFixture.TrainerLog(output).Count(e => e.Loss is not null));
            if (offline) Assert.Empty(Drain());
        }
    }

    /// <summary>
    /// The repository layouts of datasets' get_data_patterns docstring (src/datasets/data_files.py) with the splits it
    /// gives for each, and the keyword rules around them.
    /// </summary>
    [Theory]
    [InlineData("README.md|dataset.csv", "train: dataset.csv")]
    [InlineData("train.csv|test.csv", "train: train.csv; test: test.csv")]
    [InlineData("data/train.csv|data/test.csv", "train: data/train.csv; test: data/test.csv")]
    [InlineData("train_0.csv|train_1.csv|test_0.csv", "train: train_0.csv, train_1.csv; test: test_0.csv")]
    [InlineData("data/train/shard_0.csv|data/train/shard_1.csv|data/test/shard_0.csv", "train: data/train/shard_0.csv, data/train/shard_1.csv; test: data/test/shard_0.csv")]
    [InlineData("data/train-00000-of-00002.csv|data/train-00001-of-00002.csv|data/test-00000-of-00001.csv|data/random-00000-of-00001.csv",
        "train: data/train-00000-of-00002.csv, data/train-00001-of-00002.csv; test: data/test-00000-of-00001.csv; random: data/random-00000-of-00001.csv")]
    [InlineData("my_train_file.jsonl|dev.jsonl|evaluation.jsonl", "train: my_train_file.jsonl; validation: dev.jsonl; test: evaluation.jsonl")]
    [InlineData("trainer.json|contest.json", "train: trainer.json, contest.json")]
    [InlineData("dev-set/a.json|train.json", "validation: dev-set/a.json")]
    public void SplitsFollowDatasetsDefaultPatterns(string files, string expected)
    {
        var splits = HubDatasetFiles.Splits(files.Split('|').Where(f => f != "README.md").ToList());
        Assert.Equal(expected, string.Join("; ", splits.Select(s => $"{s.Key}: {string.Join(", ", s.Value)}")));
    }
}
