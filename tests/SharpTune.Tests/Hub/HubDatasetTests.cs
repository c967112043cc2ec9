using System.Text;
using System.Text.Json;
using Parquet.Serialization;
using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Data;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;
using SharpTune.Tokenization;

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
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly Tokenizer Tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
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
        var alpaca = JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, "alpaca_en_demo.json"))).RootElement.EnumerateArray().ToList();
        string Lines(IEnumerable<JsonElement> records) => string.Concat(records.Select(r => r.GetRawText().ReplaceLineEndings("") + "\n"));
        var parquet = new MemoryStream();
        ParquetSerializer.SerializeAsync(CsvParquetDatasetTests.ToolCallRows(10), parquet).GetAwaiter().GetResult();
        hub.AddRepo(DataRepo, new Dictionary<string, byte[]>
        {
            [".gitattributes"] = "*.parquet filter=lfs diff=lfs merge=lfs -text\n"u8.ToArray(),
            ["README.md"] = "# chat-data\n"u8.ToArray(),
            ["alpaca/train.jsonl"] = Encoding.UTF8.GetBytes(Lines(alpaca.Take(12))),
            ["alpaca/test.jsonl"] = Encoding.UTF8.GetBytes(Lines(alpaca.Skip(12).Take(6))),
            ["sharegpt/data/train-00000-of-00001.parquet"] = parquet.ToArray(),
            ["sharegpt/dataset_info.json"] = "{}"u8.ToArray(),
        }, "dataset");
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

    private T WithEnvironment<T>(Func<T> body, bool offline = false)
    {
        var variables = Environment(offline);
        var before = variables.Keys.ToDictionary(k => k, System.Environment.GetEnvironmentVariable);
        foreach (var (key, value) in variables) System.Environment.SetEnvironmentVariable(key, value);
        try
        {
            return body();
        }
        finally
        {
            foreach (var (key, value) in before) System.Environment.SetEnvironmentVariable(key, value);
        }
    }

    private static PreparedData Load(string datasetDir, string dataset, int? maxSamples = null) =>
        SupervisedDatasets.Load(new DataArguments { Dataset = [dataset], DatasetDir = datasetDir, CutoffLen = 1024, MaxSamples = maxSamples },
            Tokenizer, ChatTemplates.Get("qwen"), seed: 1);

    private static void AssertSameExamples(IEnumerable<SupervisedExample> expected, PreparedData actual)
    {
        var want = expected.ToList();
        Assert.Equal(want.Count, actual.Train.Count);
        for (int i = 0; i < want.Count; i++)
        {
            Assert.Equal(want[i].InputIds, actual.Train[i].InputIds);
            Assert.Equal(want[i].Labels, actual.Train[i].Labels);
        }
    }

    private string[] Drain()
    {
        var seen = hub.Requests.ToArray();
        hub.Requests.Clear();
        return seen;
    }

    [Fact]
    public void SplitsAndSubsetsLoadAsTheirLocalOriginalsThenFromTheCacheAlone()
    {
        var alpaca = Load(DemoDir, "alpaca_en_demo", maxSamples: 18).Train;
        var toolCalls = Load(DemoDir, "glaive_toolcall_en_demo", maxSamples: 10).Train;

        AssertSameExamples(alpaca.Take(12), WithEnvironment(() => Load(dir.Path, "hub_alpaca")));
        AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => Load(dir.Path, "hub_alpaca_test")));
        AssertSameExamples(toolCalls, WithEnvironment(() => Load(dir.Path, "hub_chat")));

        string snapshot = Path.Combine(cache.Path, "datasets--local-test-org--chat-data", "snapshots", LoopbackHub.Commit);
        Assert.Equal(["alpaca/test.jsonl", "alpaca/train.jsonl", "sharegpt/data/train-00000-of-00001.parquet", "sharegpt/dataset_info.json"],
            Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(snapshot, f)).Order(StringComparer.Ordinal));
        Assert.Contains(hub.Requests, r => r.Contains(" GET /blobs/", StringComparison.Ordinal)); // the parquet file came through the CDN, as LFS files do

        Drain();
        AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => Load(dir.Path, "hub_alpaca_test"), offline: true));
        AssertSameExamples(toolCalls, WithEnvironment(() => Load(dir.Path, "hub_chat"), offline: true));
        Assert.Empty(Drain());
    }

    [Fact]
    public void AMissingSplitNamesTheSplitsTheRepositoryHas()
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => Load(dir.Path, "hub_alpaca_validation")));
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset 'hub_alpaca_validation': split 'validation' is not in {DataRepo} folder 'alpaca' (its files hold: train, test)", e.Message);
    }

    [Fact]
    public void NotInTheCacheWhileOfflineNamesTheDatasetAndTheCache()
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => Load(dir.Path, "hub_alpaca"), offline: true));
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
