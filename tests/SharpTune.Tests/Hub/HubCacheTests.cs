using SharpTune.Hparams;
using SharpTune.Hub;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Hub;

/// <summary>
/// Hub ids found in the local Hugging Face cache, laid out as huggingface_hub lays it out
/// (models--ORG--NAME/refs/main holding a commit, snapshots/COMMIT/ holding the files).
/// </summary>
[Collection(CliCollection.Name)]
public sealed class HubCacheTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IDisposable
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private readonly TempDir root = new();

    public void Dispose() => root.Dispose();

    /// <summary>Puts the tiny model into the cache as test-org/tiny at <see cref="Commit"/>, with main and v1 refs.</summary>
    private string Cache()
    {
        string repo = root.File("models--test-org--tiny");
        string snapshot = Path.Combine(repo, "snapshots", Commit);
        Directory.CreateDirectory(snapshot);
        foreach (string file in Directory.GetFiles(tiny.ModelDir)) File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Commit);
        File.WriteAllText(Path.Combine(repo, "refs", "v1"), Commit + "\n");
        return snapshot;
    }

    [Fact]
    public void SnapshotsAreFoundByBranchTagOrCommit()
    {
        string snapshot = Cache();
        Assert.Equal(snapshot, HubCache.FindSnapshot("test-org/tiny", "main", root.Path));
        Assert.Equal(snapshot, HubCache.FindSnapshot("test-org/tiny", "v1", root.Path));
        Assert.Equal(snapshot, HubCache.FindSnapshot("test-org/tiny", Commit, root.Path));
        Assert.Null(HubCache.FindSnapshot("test-org/tiny", "dev", root.Path));
        Assert.Null(HubCache.FindSnapshot("test-org/other", "main", root.Path));
        Assert.Null(HubCache.FindSnapshot("test-org/tiny", "fedcba9876543210fedcba9876543210fedcba98", root.Path));
    }

    [Theory]
    [InlineData("Qwen/Qwen2.5-0.5B-Instruct", true)]
    [InlineData("gpt2", true)]
    [InlineData("a/b/c", false)]
    [InlineData("../models/x", false)]
    [InlineData("org/..", false)]
    [InlineData("/abs/path", false)]
    [InlineData("", false)]
    public void RepoIdsAreNamesOrOrgSlashName(string text, bool isId) => Assert.Equal(isId, HubCache.IsRepoId(text));

    [Fact]
    public void AHubIdInTheCacheTrainsAndChatsAndTheAdapterRecordsTheId()
    {
        Cache();
        HubTestSupport.WithVariables(new Dictionary<string, string?> { ["HF_HUB_CACHE"] = root.Path, ["HF_HUB_OFFLINE"] = null }, () =>
        {
            string output = tiny.PathFor("from-hub-id");
            TinyModelFixture.Train(tiny.WriteConfig("from-hub-id", output, ("model_name_or_path", "test-org/tiny"), ("max_steps", 1), ("save_steps", 10)));
            using (var config = TinyModelFixture.ReadJson(Path.Combine(output, "adapter_config.json")))
                Assert.Equal("test-org/tiny", config.RootElement.GetProperty("base_model_name_or_path").GetString());

            Assert.Equal(TinyModelFixture.Generate(tiny.ModelDir, "Hi", output), TinyModelFixture.Generate("test-org/tiny", "Hi", output));

            Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
            var missing = CliRunner.Run("generate", "--model", "test-org/absent", "--prompt", "Hi");
            Assert.Contains($"'test-org/absent' at revision 'main' is not in the Hugging Face cache ({root.Path}), and HF_HUB_OFFLINE is set", missing.Stderr);
        });
    }

    [Fact]
    public void ReferenceAndRewardModelsResolveThroughTheCacheAsModelNameOrPathDoes()
    {
        string snapshot = Cache();
        HubTestSupport.WithVariables(new Dictionary<string, string?> { ["HF_HUB_CACHE"] = root.Path, ["HF_HUB_OFFLINE"] = "1" }, () =>
        {
            string config = tiny.WriteConfig("ppo-hub-ids", tiny.PathFor("ppo-hub-ids"),
                ("stage", "ppo"), ("ref_model", "test-org/tiny"), ("reward_model_type", "full"), ("reward_model", "test-org/tiny"));
            var finetuning = SftConfig.Load(config, [], ConfigUse.Train).Finetuning;
            Assert.Equal((snapshot, snapshot), (finetuning.RefModel, finetuning.RewardModel));

            var e = Assert.Throws<ConfigException>(() => SftConfig.Load(config, ["ref_model=test-org/absent"], ConfigUse.Train));
            Assert.StartsWith($"ref_model: 'test-org/absent' is not a local folder, and as a Hub id: 'test-org/absent' at revision 'main' is not in the Hugging Face cache ({root.Path}), and HF_HUB_OFFLINE is set", e.Message);
        });
    }
}
