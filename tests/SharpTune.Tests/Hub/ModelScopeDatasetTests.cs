using System.Text;
using System.Text.Json;
using SharpTune.Tests.Cli;
using SharpTune.Tests.Data;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

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
    private static readonly string DemoDir = HubTestSupport.DemoDir;
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
        hub.AddDataset(DataRepo, HubTestSupport.ChatDataFiles());
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

    private T WithEnvironment<T>(Func<T> body, bool useModelScope = false, bool offline = false) =>
        HubTestSupport.WithVariables(Environment(useModelScope, offline), body);

    private string LoadError(string dataset)
    {
        var e = Assert.Throws<InvalidDataException>(() => WithEnvironment(() => HubTestSupport.Load(dir.Path, dataset)));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private string[] Drain() => HubTestSupport.Drain(hub.Requests);

    private string Where(string dataset) => $"{Path.Combine(dir.Path, "dataset_info.json")}: dataset '{dataset}'";

    [Fact]
    public void SplitsAndFoldersLoadIntoModelscopesDatasetCacheThenFromTheCacheAlone()
    {
        var alpaca = HubTestSupport.Load(DemoDir, "alpaca_en_demo", maxSamples: 18).Train;
        var toolCalls = HubTestSupport.Load(DemoDir, "glaive_toolcall_en_demo", maxSamples: 10).Train;

        HubTestSupport.AssertSameExamples(alpaca.Take(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "ms_alpaca")));
        HubTestSupport.AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "ms_alpaca_test")));
        HubTestSupport.AssertSameExamples(toolCalls, WithEnvironment(() => HubTestSupport.Load(dir.Path, "ms_chat")));

        string folder = Path.Combine(cache.Path, "datasets", "local-test-org", "chat-data");
        Assert.Equal(["alpaca/test.jsonl", "alpaca/train.jsonl", "sharegpt/data/train-00000-of-00001.parquet"],
            Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/')).Order(StringComparer.Ordinal));
        var requests = Drain();
        Assert.Contains(requests, r => r.StartsWith("GET /api/v1/datasets/70000/repo/tree?Revision=master&Root=%2F&Recursive=True&PageNumber=1&PageSize=150 ", StringComparison.Ordinal));
        Assert.Contains(requests, r => r.StartsWith($"GET /api/v1/datasets/{DataRepo}/repo?Source=SDK&Revision=master&FilePath=alpaca%2Ftest.jsonl ", StringComparison.Ordinal));

        HubTestSupport.AssertSameExamples(alpaca.Skip(12), WithEnvironment(() => HubTestSupport.Load(dir.Path, "ms_alpaca_test"), offline: true));
        HubTestSupport.AssertSameExamples(toolCalls, WithEnvironment(() => HubTestSupport.Load(dir.Path, "ms_chat"), offline: true));
        Assert.Empty(Drain());
    }

    [Fact]
    public void AnMsHubUrlWinsOverAnHfHubUrlOnlyWithUseModelScopeHub()
    {
        var alpaca = HubTestSupport.Load(DemoDir, "alpaca_en_demo", maxSamples: 12).Train;
        HubTestSupport.AssertSameExamples(alpaca, WithEnvironment(() => HubTestSupport.Load(dir.Path, "both_hubs"), useModelScope: true));
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

        HubTestSupport.AssertSameExamples(HubTestSupport.Load(DemoDir, "alpaca_en_demo", maxSamples: 3).Train, WithEnvironment(() => HubTestSupport.Load(dir.Path, "paged")));
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
