using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Peft;

/// <summary>`sharptune chat` and `generate` with unmerged adapters, end to end on the small fixture model.</summary>
[Collection(CliCollection.Name)]
public sealed class ChatWithAdapterCommandTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("chat-adapter");
    private readonly string _base;

    public ChatWithAdapterCommandTests() => _base = LoraTestFolders.ChatReadyBase(Path.Combine(_dir, "base"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Generate(string model, params string[] adapters)
    {
        var args = new List<string> { "generate", "--model", model, "--template", "qwen", "--prompt", "Say something.", "--greedy", "--max-new-tokens", "12" };
        foreach (string adapter in adapters) args.AddRange(["--adapter", adapter]);
        var r = CliRunner.Run(args.ToArray());
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout;
    }

    [Fact]
    public void AdapterChangesTheGreedyReplyAndEqualsTheMergedModel()
    {
        string merged = Path.Combine(_dir, "merged");
        var merge = CliRunner.Run("check", "merge", "--model", _base, "--adapter", LoraTestFolders.Adapter, "--out", merged);
        Assert.True(merge.ExitCode == 0, merge.Stderr);
        // check merge copies the tokenizer, so the merged folder chats on its own.
        Assert.True(File.Exists(Path.Combine(merged, "tokenizer.json")));

        string plain = Generate(_base);
        string adapted = Generate(_base, LoraTestFolders.Adapter);
        string fromMerged = Generate(merged);

        Assert.True(adapted.Trim().Length > 0, "the adapted model must reply");
        Assert.NotEqual(plain, adapted);
        Assert.Equal(adapted, fromMerged);
    }

    [Fact]
    public void StackedAdaptersDifferFromEitherAlone()
    {
        string first = Generate(_base, LoraTestFolders.Adapter);
        string both = Generate(_base, LoraTestFolders.Adapter, LoraTestFolders.RsloraAdapter);

        Assert.NotEqual(first, both);
    }

    [Fact]
    public void ChatRunsWithAnAdapterAndReportsIt()
    {
        var r = CliRunner.RunWithInput("hello\n/clear\nhi again\n/exit\n",
            "chat", "--model", _base, "--adapter", LoraTestFolders.Adapter, "--template", "qwen", "--greedy", "--max-new-tokens", "6");

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(r.Stderr.Contains($"[sharptune] adapter: {LoraTestFolders.Adapter} (r = 8, scaling 2, 21 LoRA modules, 0 replaced tensors)"), r.Stderr);
        Assert.StartsWith("User: Assistant: ", r.Stdout);
        Assert.Contains("(history cleared)", r.Stdout);
        Assert.Equal(2, r.Stdout.Split("Assistant: ").Length - 1);
    }

    [Fact]
    public void MismatchedAdapterIsAOneLineError()
    {
        string adapter = LoraTestFolders.WriteAdapter(Path.Combine(_dir, "wrong"), 4, [LoraTestFolders.Pair("model.layers.2.mlp.gate_proj", 4, 96, 48)]);

        var r = CliRunner.Run("generate", "--model", _base, "--template", "qwen", "--adapter", adapter, "--prompt", "x");

        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"error: {adapter}: module 'model.layers.2.mlp.gate_proj' has lora_A [4, 96] and lora_B [48, 4], but the base model {_base} " +
            "has 'model.layers.2.mlp.gate_proj.weight' [96, 48]; was the adapter trained on another model?", r.Stderr.Trim());
    }
}
