using SharpTune.Swift;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Swift;

/// <summary>ms-swift's argument names read by <see cref="SwiftArguments"/>, its version folders, and docs/swift.md's table against the code.</summary>
public sealed class SwiftArgumentsTests
{
    [Fact]
    public void OldNamesAreTakenAsTheir3xNamesWithANoteAndListsTakeEveryValue()
    {
        var a = SwiftArguments.Parse(SwiftCommand.Sft,
            ["--model_type", "chatglm3-6b", "--sft_type", "lora", "--dataset", "a.jsonl#10", "b.jsonl", "--lora_target_modules", "ALL", "--quantization_bit=4", "--eval_dataset_sample", "5"]);

        Assert.Equal("lora", a.Text("train_type"));
        Assert.Equal(["a.jsonl#10", "b.jsonl"], a.List("dataset"));
        Assert.Equal(["ALL"], a.List("target_modules"));
        Assert.Equal("4", a.Text("quant_bits"));
        Assert.Equal("bnb", a.Text("quant_method"));
        Assert.Equal(5, a.Int("val_dataset_sample"));
        Assert.Contains("--sft_type is ms-swift 2.x's name of --train_type", a.Notes);
        Assert.Contains(a.Notes, n => n.StartsWith("--eval_dataset_sample is not an argument of any ms-swift release", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(SwiftCommand.Sft, new[] { "--deepspeed", "zero2" }, "--deepspeed is not supported")]
    [InlineData(SwiftCommand.Sft, new[] { "--lora_rnk", "8" }, "unknown argument --lora_rnk")]
    [InlineData(SwiftCommand.Infer, new[] { "--dataset", "x.jsonl" }, "--dataset is not an argument of swift infer")]
    [InlineData(SwiftCommand.Sft, new[] { "--lora_rank" }, "--lora_rank needs a value")]
    [InlineData(SwiftCommand.Sft, new[] { "--sft_type", "lora", "--train_type", "full" }, "--train_type is given twice")]
    [InlineData(SwiftCommand.Infer, new[] { "--infer_backend", "vllm" }, "--infer_backend is not supported")]
    public void RefusedArgumentsNameThemselves(SwiftCommand command, string[] argv, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => SwiftArguments.Parse(command, argv));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void RefusedValuesNameTheirArgument()
    {
        using var dir = new TempDir();
        string data = TestPaths.Fixtures("swift", "medical_qa.jsonl");
        void Refused(string message, params string[] argv)
        {
            var e = Assert.Throws<ArgumentException>(() => SwiftRun.PrepareSft(SwiftArguments.Parse(SwiftCommand.Sft, argv), dir.Path, DateTime.Now));
            Assert.Contains(message, e.Message);
        }
        Refused("--quant_method awq is not supported", "--model", dir.Path, "--dataset", data, "--quant_method", "awq", "--quant_bits", "4");
        Refused("--quant_bits must be 4 or 8", "--model", dir.Path, "--dataset", data, "--quant_method", "bnb", "--quant_bits", "2");
        Refused("--target_modules DEFAULT is not supported", "--model", dir.Path, "--dataset", data, "--lora_target_modules", "DEFAULT");
        Refused("--model_type llama9 is not one SharpTune knows", "--model_type", "llama9", "--dataset", data);
        Refused("--dataset missing.jsonl#3", "--model", dir.Path, "--dataset", "missing.jsonl#3");
        Refused("--dataset " + data + "#x: the number after # must be a positive integer", "--model", dir.Path, "--dataset", data + "#x");
        Refused("--template vicuna is not one SharpTune has", "--model", dir.Path, "--dataset", data, "--template", "vicuna");
        Refused("--train_type longlora is not supported", "--model", dir.Path, "--dataset", data, "--train_type", "longlora");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void TheVersionFolderIsOneMoreThanTheHighestVnWithTheTimestamp()
    {
        using var dir = new TempDir();
        var now = new DateTime(2026, 12, 5, 21, 3, 4);
        Assert.Equal(Path.Combine(dir.Path, "v0-20261205-210304"), SwiftRun.VersionFolder(dir.Path, now));
        Directory.CreateDirectory(dir.File("v0-20260101-000000"));
        Directory.CreateDirectory(dir.File("v3-20260101-000000"));
        Directory.CreateDirectory(dir.File("vx"));
        Assert.Equal(Path.Combine(dir.Path, "v4-20261205-210304"), SwiftRun.VersionFolder(dir.Path, now));
        Assert.Equal("1d 2h 3m 4s", SwiftRun.FormatTime(93784.5));
        Assert.Equal("3m 0s", SwiftRun.FormatTime(180));
        Assert.Equal("59s", SwiftRun.FormatTime(59.9));
    }

    [Fact]
    public void DocsSwiftMdListsEveryAcceptedArgumentAndModelType()
    {
        string doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "swift.md"));
        foreach (var command in Enum.GetValues<SwiftCommand>())
            foreach (string name in SwiftArguments.AcceptedNames(command))
                Assert.True(doc.Contains($"`--{name}`", StringComparison.Ordinal), $"docs/swift.md does not list --{name}");
        foreach (var model in SwiftModels.Table)
            Assert.True(doc.Contains($"| `{model.ModelType}` | `{model.ModelId}` | `{model.Template}` |", StringComparison.Ordinal), $"docs/swift.md does not list {model.ModelType}");
    }
}
