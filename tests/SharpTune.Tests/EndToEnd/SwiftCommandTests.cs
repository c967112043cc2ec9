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
    private const string SystemPrompt = "You are a careful medical assistant.";

    [Fact]
    public void TheTextbooksSwiftSftInferAndExportRunEndToEnd()
    {
        string output = tiny.PathFor("swift-output");
        var sft = CliRunner.Run("swift", "sft",
            "--model_type", "qwen2_5-0_5b-instruct", "--model_id_or_path", tiny.ModelDir,
            "--sft_type", "qlora", "--dataset", TestPaths.Fixtures("swift", "medical_qa.jsonl"),
            "--train_dataset_sample", "10", "--eval_dataset_sample", "2",
            "--lora_target_modules", "ALL", "--lora_rank", "4", "--max_length", "64", "--system", SystemPrompt,
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
            Assert.Equal(SystemPrompt, root.GetProperty("system").GetString());
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
        using (var session = ChatSession.Open(tiny.ModelDir, "qwen", SystemPrompt, [checkpoint], new QuantizationOptions(4)))
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

    [PosixFact]
    public void SwiftDeployServesTheCheckpointAsAModelIdOfTheOpenAiApi()
    {
        string output = tiny.PathFor("swift-deploy");
        var sft = CliRunner.Run("swift", "sft", "--model", tiny.ModelDir, "--template", "qwen2_5", "--dataset", TestPaths.Fixtures("swift", "medical_qa.jsonl") + "#4",
            "--system", SystemPrompt, "--lora_rank", "4", "--max_length", "64", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-2", "--output_dir", output);
        Assert.True(sft.ExitCode == 0, sft.Stderr);
        string checkpoint = Path.Combine(Assert.Single(Directory.GetDirectories(output)), "checkpoint-1");

        const string question = "What is a fever?";
        string? reply = null;
        Exception? failure = null;
        var (exitCode, stderr) = CliProcess.RunAndInterrupt(
            ["swift", "deploy", "--adapters", "medic=" + checkpoint, "--port", "0", "--max_new_tokens", "8", "--temperature", "0"],
            "[sharptune] serving the OpenAI API at ", TimeSpan.FromMinutes(2),
            new Dictionary<string, string?> { ["API_HOST"] = null, ["API_PORT"] = null, ["API_KEY"] = null },
            line =>
            {
                try
                {
                    string url = line["[sharptune] serving the OpenAI API at ".Length..line.IndexOf(';')].Split(", ")[0];
                    using var client = new HttpClient();
                    string body = JsonSerializer.Serialize(new { model = "medic", messages = new[] { new { role = "user", content = question } } });
                    using var response = client.PostAsync(url + "/chat/completions", new StringContent(body, System.Text.Encoding.UTF8, "application/json")).GetAwaiter().GetResult();
                    using var json = JsonDocument.Parse(response.Content.ReadAsStringAsync().GetAwaiter().GetResult());
                    reply = json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
                }
                catch (Exception e)
                {
                    failure = e;
                }
            });

        Assert.True(exitCode == 0, stderr);
        Assert.Null(failure);
        Assert.Contains("model id 'medic': template qwen", stderr);
        // The served adapter answers as swift infer does: the run's system, template and adapter, greedy, 8 tokens.
        using var session = ChatSession.Open(tiny.ModelDir, "qwen", SystemPrompt, [checkpoint]);
        Assert.Equal(session.Reply(question, session.DefaultOptions() with { DoSample = false, MaxNewTokens = 8 }).Text, reply);
    }

    [GeneratedRegex(@"^v0-\d{8}-\d{6}$")]
    private static partial Regex VersionName();
}
