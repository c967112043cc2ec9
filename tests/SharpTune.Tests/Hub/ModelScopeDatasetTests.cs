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
/// <c>ms_hub_url</c> datasets from the loopback stand-in ModelScope: the data files land in modelscope's dataset cache
/// (MODELSCOPE_CACHE/datasets/ORG/NAME/PATH), splits resolve as for <c>hf_hub_url</c>, the records train as their
/// local originals do, and a second load reads the cache alone. In the CLI collection because the loads read
/// USE_MODELSCOPE_HUB, MODELSCOPE_DOMAIN and MODELSCOPE_CACHE from the process environment.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ModelScopeDatasetTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IAsyncLifetime
{
    private const string DataRepo = "local-test-org/chat-data";
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly Tokenizer Tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
    private readonly TempDir cache = new();
    private readonly DataDir dir = new();
    private LoopbackModelScope hub = null!;

    private const string Registry = """
        {
          "ms_alpaca": {"ms_hub_url": "local-test-org/chat-data", "subset": "alpaca"},
          "ms_alpaca_test": {"ms_hub_url": "local-test-org/chat-data", "subset": "alpaca", "split": "test"},
          "ms_alpaca_validation": {"ms_hub_url": "local-test-org/chat-data", "subset": "alpaca", "split": "validation"},
          "ms_chat": {"ms_hub_url": "local-test-org/chat-data", "folder": "sharegpt", "formatting": "sharegpt",
                      "columns": {"messages": "conversations", "tools": "tools"}},
          "both_hubs": {"hf_hub_url": "local-test-org/chat-data", "ms_hub_url": "local-test-org/chat-data", "subset": "alpaca"},
          "ms_missing": {"ms_hub_url": "local-test-org/no-such-data"}
        }
        """;

    public Task InitializeAsync()
    {
        hub = new LoopbackModelScope(tiny.ModelDir);
        var alpaca = JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, "alpaca_en_demo.json"))).RootElement.EnumerateArray().ToList();
        string Lines(IEnumerable<JsonElement> records) => string.Concat(records.Select(r => r.GetRawText().ReplaceLineEndings("") + "\n"));
        var parquet = new MemoryStream();
        ParquetSerializer.SerializeAsync(CsvParquetDatasetTests.ToolCallRows(10), parquet).GetAwaiter().GetResult();
        hub.AddDataset(DataRepo, new Dictionary<string, byte[]>
        {
            ["README.md"] = "# chat-data\n"u8.ToArray(),
            ["alpaca/train.jsonl"] = Encoding.UTF8.GetBytes(Lines(alpaca.Take(12))),
            ["alpaca/test.jsonl"] = Encoding.UTF8.GetBytes(Lines(alpaca.Skip(12).Take(6))),
            ["sharegpt/data/train-00000-of-00001.parquet"] = parquet.ToArray(),
        });
        dir.Info(Registry);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await hub.DisposeAsync();
        cache.Dispose();
        dir.Dispose();
    }

    private Dictionary<string, string?> Environment(bool useModelScope = false, bool offline = false) => new()
    {
        ["USE_MODELSCOPE_HUB"] = useModelScope ? "1" : null, ["MODELSCOPE_DOMAIN"] = hub.Endpoint, ["MODELSCOPE_CACHE"] = cache.Path,
        ["MODELSCOPE_API_TOKEN"] = null, ["HF_HUB_OFFLINE"] = offline ? "1" : null,
        // Were the Hugging Face side asked, it would fail: nothing listens there.
        ["HF_ENDPOINT"] = "http://127.0.0.1:1", ["HF_HUB_CACHE"] = cache.File("hf"), ["HF_TOKEN"] = null, ["HF_HOME"] = cache.File("home"),
    };

    private T WithEnvironment<T>(Func<T> body, bool useModelScope = false, bool offline = false)
    {
        var variables = Environment(useModelScope, offline);
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

    private string LoadError(string dataset)
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => Load(dir.Path, dataset)));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private string[] Drain()
    {
        var seen = hub.Requests.ToArray();
        hub.Requests.Clear();
        return seen;
    }

    private string Where(string dataset) => $"{Path.Combine(dir.Path, "dataset_info.json")}: dataset '{dataset}'";

    [Fact]
    public void SplitsAndFoldersLoadIntoModelscopesDatasetCacheThenFromTheCacheAlone()
    {
        var alpaca = Load(DemoDir, "alpaca_en_demo", maxSamples: 18).Train;
        var toolCalls = Load(DemoDir, "glaive_toolcall_en_demo", maxSamples: 10).Train;

        AssertSameExamples(alpaca.Take(12), WithEnvironment(() => Load(dir.Path, "ms_alpaca")));
        AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => Load(dir.Path, "ms_alpaca_test")));
        AssertSameExamples(toolCalls, WithEnvironment(() => Load(dir.Path, "ms_chat")));

        string folder = Path.Combine(cache.Path, "datasets", "local-test-org", "chat-data");
        Assert.Equal(["alpaca/test.jsonl", "alpaca/train.jsonl", "sharegpt/data/train-00000-of-00001.parquet"],
            Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal));
        var requests = Drain();
        Assert.Contains(requests, r => r.StartsWith("GET /api/v1/datasets/70000/repo/tree?Revision=master&Root=%2F&Recursive=True&PageNumber=1&PageSize=150 ", StringComparison.Ordinal));
        Assert.Contains(requests, r => r.StartsWith($"GET /api/v1/datasets/{DataRepo}/repo?Source=SDK&Revision=master&FilePath=alpaca%2Ftest.jsonl ", StringComparison.Ordinal));

        AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => Load(dir.Path, "ms_alpaca_test"), offline: true));
        AssertSameExamples(toolCalls, WithEnvironment(() => Load(dir.Path, "ms_chat"), offline: true));
        Assert.Empty(Drain());
    }

    [Fact]
    public void AnMsHubUrlWinsOverAnHfHubUrlOnlyWithUseModelScopeHub()
    {
        var alpaca = Load(DemoDir, "alpaca_en_demo", maxSamples: 12).Train;
        AssertSameExamples(alpaca, WithEnvironment(() => Load(dir.Path, "both_hubs"), useModelScope: true));
        Assert.NotEmpty(Drain());

        // Without USE_MODELSCOPE_HUB, LLaMA-Factory reads the hf_hub_url: the (unreachable) Hugging Face Hub is asked.
        Assert.StartsWith($"{Where("both_hubs")}: '{DataRepo}' at revision 'main' is not in the Hugging Face cache", LoadError("both_hubs"));
        Assert.Empty(Drain());
    }

    [Fact]
    public void ADatasetListedOverSeveralPagesIsReadToItsLastPage()
    {
        var files = Enumerable.Range(0, 150).ToDictionary(i => $"notes/n{i:D3}.txt", i => "a note\n"u8.ToArray());
        files["train.jsonl"] = Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(DemoDir, "alpaca_en_demo.json")) is var json
            ? string.Concat(JsonDocument.Parse(json).RootElement.EnumerateArray().Take(3).Select(r => r.GetRawText().ReplaceLineEndings("") + "\n")) : "");
        hub.AddDataset("local-test-org/paged", files);
        dir.Info("""{"paged": {"ms_hub_url": "local-test-org/paged"}}""");

        AssertSameExamples(Load(DemoDir, "alpaca_en_demo", maxSamples: 3).Train, WithEnvironment(() => Load(dir.Path, "paged")));
        Assert.Contains(Drain(), r => r.Contains("&PageNumber=2&PageSize=150 ", StringComparison.Ordinal));
    }

    [Fact]
    public void AMissingSplitOrDatasetGivesOneLine()
    {
        Assert.Equal($"{Where("ms_alpaca_validation")}: split 'validation' is not in {DataRepo} folder 'alpaca' (its files hold: train, test)",
            LoadError("ms_alpaca_validation"));
        Assert.Equal($"{Where("ms_missing")}: dataset 'local-test-org/no-such-data' or its revision 'master' was not found at {hub.Endpoint} (ModelScope says: The dataset does not exist or the revision is invalid)",
            LoadError("ms_missing"));
    }

    [Fact]
    public void SharptuneTrainsOnAnMsHubUrlDatasetThenOfflineFromTheCache()
    {
        foreach (bool offline in new[] { false, true })
        {
            string output = tiny.PathFor($"ms-dataset-{offline}");
            string config = tiny.WriteConfig($"ms-dataset-{offline}", output, ("dataset", "ms_chat,ms_alpaca"), ("dataset_dir", dir.Path),
                ("cutoff_len", 96), ("max_steps", 2), ("save_steps", 10));
            Drain();
            var result = CliProcess.Run(["train", config], Environment(useModelScope: true, offline: offline));
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.True(File.Exists(Path.Combine(output, "adapter_model.safetensors")), result.Stderr);
            Assert.Equal(2, TinyModelFixture.TrainerLog(output).Count(e => e.Loss is not null));
            if (offline) Assert.Empty(Drain());
            else Assert.Contains(Drain(), r => r.Contains("/api/v1/datasets/", StringComparison.Ordinal));
        }
    }
}
