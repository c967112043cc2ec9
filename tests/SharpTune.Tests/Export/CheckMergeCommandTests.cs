using SharpTune.Tests.Cli;
using SharpTune.Tests.Peft;

namespace SharpTune.Tests.Export;

/// <summary>`sharptune check merge` through the real command line.</summary>
[Collection(CliCollection.Name)]
public sealed class CheckMergeCommandTests : IDisposable
{
    private readonly string _dir = LoraTestFolders.NewTempDir("check-merge");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WritesTheFolderPeftMergeAndUnloadWrites()
    {
        string output = Path.Combine(_dir, "merged");

        var r = CliRunner.Run("check", "merge", "--model", LoraTestFolders.Base, "--adapter", LoraTestFolders.Adapter, "--out", output);

        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(["model.safetensors", "config.json", "generation_config.json"], r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        ModelExporterTests.AssertEqualsPeftMerge(output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(LoraTestFolders.Base, "generation_config.json")), File.ReadAllBytes(Path.Combine(output, "generation_config.json")));
    }

    [Fact]
    public void MismatchedAdapterIsAOneLineError()
    {
        var r = CliRunner.Run("check", "merge", "--model", TestPaths.Fixtures("qwen2-tiny"), "--adapter", LoraTestFolders.Adapter, "--out", Path.Combine(_dir, "x"));

        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"error: {LoraTestFolders.Adapter}: module 'model.layers.0.mlp.down_proj' has lora_A [8, 96] and lora_B [48, 8], but the base model " +
            $"{TestPaths.Fixtures("qwen2-tiny")} has 'model.layers.0.mlp.down_proj.weight' [64, 176]; was the adapter trained on another model?", r.Stderr.Trim());
    }

    [Fact]
    public void OutputIntoTheBaseFolderIsRefused()
    {
        var r = CliRunner.Run("check", "merge", "--model", LoraTestFolders.Base, "--adapter", LoraTestFolders.Adapter, "--out", LoraTestFolders.Base);

        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"error: export_dir '{LoraTestFolders.Base}' is the base model folder; export to a new folder so the base stays intact", r.Stderr.Trim());
    }
}
