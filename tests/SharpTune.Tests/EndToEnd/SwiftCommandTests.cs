using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.Chat;
using SharpTune.Quantization;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// The textbook's ms-swift workflow through `sharptune swift` on the tiny model: `swift sft` with its 2.x arguments
/// (and the invalid --sft_type qlora and --eval_dataset_sample, taken with notes) writes ms-swift's layout, `swift
/// infer --adapters CKPT` finds the run by its args.json and answers, `swift export --merge_lora true` merges.
/// </summary>
[Collection(CliCollection.Name)]
public sealed partial class SwiftCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const string System = "You are a careful medical assistant.";

    [Fact]
    public void TheTextbooksSwiftSftInferAndExportRunEndToEnd()
    {
        string output = tiny.PathFor("swift-output");
        var sft = CliRunner.Run("swift", "sft",
            "--model_type", "qwen2_5-0_5b-instruct", "--model_id_or_path", tiny.ModelDir,
            "--sft_type", "qlora", "--dataset", TestPaths.Fixtures("swift", "medical_qa.jsonl"),
            "--train_dataset_sample", "10", "--eval_dataset_sample", "2",
            "--lora_target_modules", "ALL", "--lora_rank", "4", "--max_length", "64", "--system", System,
            "--num_train_epochs", "1", "--batch_size", "4", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-2",
            "--save_steps", "1", "--logging_steps", "1", "--output_dir", output);
        Assert.True(sft.ExitCode == 0, sft.Stderr);
        Assert.Contains("--sft_type qlora is not a value of any ms-swift release; taken as --train_type lora with --quant_method bnb --quant_bits 4", sft.Stderr);
        Assert.Contains("--eval_dataset_sample is not an argument of any ms-swift release", sft.Stderr);

        // ms-swift's layout: one vN-YYYYMMDD-HHMMSS run folder with args.json, logging.jsonl and checkpoint-N folders.
        string run = Assert.Single(Directory.GetDirectories(output));
        Assert.Matches(VersionName(), Path.GetFileName(run));
        using (var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "args.json"))))
        {
            var root = args.RootElement;
            Assert.Equal(tiny.ModelDir, root.GetProperty("model").GetString());
            Assert.Equal("qwen2_5-0_5b-instruct", root.GetProperty("model_type").GetString());
            Assert.Equal("qwen", root.GetProperty("template").GetString());
            Assert.Equal(System, root.GetProperty("system").GetString());
            Assert.Equal("lora", root.GetProperty("train_type").GetString());
            Assert.Equal(4, root.GetProperty("quant_bits").GetInt32());
            Assert.Equal(32, root.GetProperty("lora_alpha").GetInt32());   // ms-swift's default
        }
        // 10 records, 2 held out for validation, 8 in batches of 4: 2 steps, each saved and logged.
        string[] log = File.ReadAllLines(Path.Combine(run, "logging.jsonl"));
        Assert.Contains(log, line => line.Contains("\"global_step/max_steps\": \"2/2\"", StringComparison.Ordinal) && line.Contains("\"loss\"", StringComparison.Ordinal));
        Assert.Contains(log, line => line.Contains("\"eval_loss\"", StringComparison.Ordinal));
        string checkpoint = Path.Combine(run, "checkpoint-2");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(run, "args.json")), File.ReadAllText(Path.Combine(checkpoint, "args.json")));
        Assert.True(File.Exists(Path.Combine(run, "checkpoint-1", "args.json")));

        // swift infer reads model, template, system and the 4-bit base from the checkpoint's args.json.
        const string question = "What is a fever?";
        var infer = CliRunner.RunWithInput(question + "\n", "swift", "infer", "--adapters", checkpoint, "--max_new_tokens", "8", "--temperature", "0");
        Assert.True(infer.ExitCode == 0, infer.Stderr);
        using (var session = ChatSession.Open(tiny.ModelDir, "qwen", System, [checkpoint], new QuantizationOptions(4)))
        {
            var options = session.DefaultOptions() with { DoSample = false, MaxNewTokens = 8 };
            string expected = session.Reply(question, options).Text;
            Assert.Equal(expected + "\n", infer.Stdout);
        }

        // swift export --merge_lora true writes CKPT-merged, the base with the adapter merged in.
        var export = CliRunner.Run("swift", "export", "--adapters", checkpoint, "--merge_lora", "true");
        Assert.True(export.ExitCode == 0, export.Stderr);
        string merged = checkpoint + "-merged";
        Assert.True(File.Exists(Path.Combine(merged, "model.safetensors")));
        Assert.Equal(TinyModelFixture.GreedyIds(tiny.ModelDir, question, checkpoint), TinyModelFixture.GreedyIds(merged, question));
        var again = CliRunner.Run("swift", "export", "--adapters", checkpoint, "--merge_lora", "true");
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("--output_dir " + merged + " already exists", again.Stderr);
    }

    [Fact]
    public void ARefusedArgumentNamesItselfAndLeavesNoRunFolder()
    {
        string output = tiny.PathFor("swift-refused");
        var r = CliRunner.Run("swift", "sft", "--model", tiny.ModelDir, "--dataset", TestPaths.Fixtures("swift", "medical_qa.jsonl"),
            "--deepspeed", "default-zero2", "--output_dir", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--deepspeed is not supported", r.Stderr);
        Assert.False(Directory.Exists(output));

        // A value the LLaMA-Factory config refuses fails after the folder is made; the half-made run is removed.
        var bad = CliRunner.Run("swift", "sft", "--model", tiny.PathFor("no-such-model"), "--dataset", TestPaths.Fixtures("swift", "medical_qa.jsonl"),
            "--output_dir", output);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("no-such-model", bad.Stderr);
        Assert.Empty(Directory.Exists(output) ? Directory.GetFileSystemEntries(output) : []);
    }

    [GeneratedRegex(@"^v0-\d{8}-\d{6}$")]
    private static partial Regex VersionName();
}
