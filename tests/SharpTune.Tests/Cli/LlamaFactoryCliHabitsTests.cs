using SharpTune.Cli;
using SharpTune.Engine;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.Peft;

namespace SharpTune.Tests.Cli;

/// <summary>
/// LLaMA-Factory's command-line habits: `chat CONFIG.yaml`, `--key value` overrides, `env`/`version`, and `exit` /
/// `clear` typed alone in chat.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class LlamaFactoryCliHabitsTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>, IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("cli-habits");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void KeyValueOptionsAfterAConfigBecomeOverrides()
    {
        Assert.Equal(
            ["train", "cfg.yaml", "learning_rate=1e-4", "max_steps=-1", "save_steps=5", "do_train=true", "--lenient", "plot_loss=true", "template=qwen"],
            ConfigArguments.Normalize(["train", "cfg.yaml", "--learning_rate", "1e-4", "--max_steps", "-1", "--save_steps=5", "--do_train", "--lenient", "plot_loss=true", "--template", "qwen"]));
        // Without a config, options are the command's own (chat --template is chat's option).
        string[] plain = ["chat", "--model", "m", "--template", "qwen"];
        Assert.Equal(plain, ConfigArguments.Normalize(plain));
        string[] other = ["compare", "x.yaml", "--template", "qwen"];
        Assert.Equal(other, ConfigArguments.Normalize(other));
    }

    [Fact]
    public void TrainTakesKeyValueOptionsAsLlamaFactoryShellExamplesPassThem()
    {
        string output = tiny.PathFor("dashed-out");
        string config = tiny.WriteConfig("dashed", output);
        var r = CliRunner.Run("train", config, "--max_steps", "2", "--save_steps=2", "--logging_steps", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("\"global_step\": 2", File.ReadAllText(Path.Combine(output, "trainer_state.json")));
    }

    [Fact]
    public void ChatTakesAConfigWithItsAdaptersTemplateAndGenerationKeys()
    {
        string model = LoraTestFolders.ChatReadyBase(Path.Combine(_dir, "base"));
        var generated = CliRunner.Run("generate", "--model", model, "--adapter", LoraTestFolders.Adapter, "--template", "qwen",
            "--prompt", "hello", "--greedy", "--max-new-tokens", "6");
        Assert.True(generated.ExitCode == 0, generated.Stderr);

        string config = Path.Combine(_dir, "chat.yaml");
        File.WriteAllText(config, $"model_name_or_path: {model}\nadapter_name_or_path: {LoraTestFolders.Adapter}\ntemplate: qwen\n" +
            "finetuning_type: lora\ndo_sample: false\nmax_new_tokens: 6\ninfer_backend: huggingface\n");
        var r = CliRunner.RunWithInput("hello\nexit\n", "chat", config);

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal($"User: Assistant: {generated.Stdout.TrimEnd('\n')}\nUser: ", r.Stdout);
    }

    [Fact]
    public void ChatTakesKeyValueOptionsAfterItsConfig()
    {
        string model = LoraTestFolders.ChatReadyBase(Path.Combine(_dir, "base"));
        string config = Path.Combine(_dir, "chat.yaml");
        File.WriteAllText(config, $"model_name_or_path: {model}\ntemplate: qwen\ndo_sample: false\nmax_new_tokens: 6\n");
        var r = CliRunner.RunWithInput("hello\n", "chat", config, "--template", "llama3");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("the llama3 template's stop word '<|eot_id|>' is not a single token", r.Stderr);
    }

    [Fact]
    public void ExitAndClearTypedAloneAreCommands()
    {
        string model = LoraTestFolders.ChatReadyBase(Path.Combine(_dir, "base"));
        var r = CliRunner.RunWithInput("hello\n clear \nhi again\nexit\nnever sent\n",
            "chat", "--model", model, "--template", "qwen", "--greedy", "--max-new-tokens", "4");

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("(history cleared)", r.Stdout);
        Assert.Equal(2, r.Stdout.Split("Assistant: ").Length - 1);
        Assert.EndsWith("User: ", r.Stdout);
    }

    [Fact]
    public void VersionPrintsTheToolVersion()
    {
        var r = CliRunner.Run("version");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal($"sharptune {EnvCommandsVersion}\n", r.Stdout.ReplaceLineEndings("\n"));
        Assert.StartsWith("0.1.0", EnvCommandsVersion);
    }

    [Fact]
    public void EnvDescribesTheMachine()
    {
        var r = CliRunner.Run("env");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] lines = r.Stdout.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Equal(
            ["SharpTune version", ".NET", "OS", "CPU", "CPU features", "compute", "bf16 compute", "oneDNN", "OpenBLAS", "memory"],
            lines.Select(l => l[2..l.IndexOf(':')]));
        Assert.Contains($"- compute: {GemmKernels.Describe()}", lines);
        Assert.Contains(lines, l => l.StartsWith("- CPU features: AVX2 ", StringComparison.Ordinal) && l.Contains("AVX512-BF16 ") && l.Contains("AMX-BF16 "));
        Assert.Contains(lines, l => l.StartsWith("- .NET: .NET 10", StringComparison.Ordinal));
    }

    private static string EnvCommandsVersion => SharpTune.Cli.Commands.EnvCommands.Version;
}
