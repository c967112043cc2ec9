using System.Text.Json;
using SharpTune.Chat;
using SharpTune.Evaluation.Metrics;
using SharpTune.Swift;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.EndToEnd;

/// <summary>
/// `swift rlhf` for each rlhf_type on the tiny model with LLaMA-Factory's demo preference data rewritten in ms-swift's
/// format (tests/fixtures/swift/SOURCE.md), in swift sft's run layout that `swift infer --adapters` reads back; and
/// `swift eval` on local general_qa and general_mcq sets, its report checked against replies generated here.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class SwiftRlhfEvalCommandTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const string Question = "What is a fever?";

    private string RunRlhf(string type, string output, string dataset, params string[] extra)
    {
        var r = CliRunner.Run(["swift", "rlhf", "--rlhf_type", type, "--model", tiny.ModelDir, "--template", "qwen2_5",
            "--dataset", TestPaths.Fixtures("swift", dataset), "--lora_rank", "4", "--max_length", "64", "--max_steps", "1",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--learning_rate", "1e-3", "--output_dir", output, .. extra]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string run = Assert.Single(Directory.GetDirectories(output));
        Assert.Matches(@"^v0-\d{8}-\d{6}$", Path.GetFileName(run));
        string checkpoint = Path.Combine(run, "checkpoint-1");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(run, "args.json")), File.ReadAllText(Path.Combine(checkpoint, "args.json")));
        Assert.Contains(File.ReadAllLines(Path.Combine(run, "logging.jsonl")), line => line.Contains("\"global_step/max_steps\": \"1/1\"", StringComparison.Ordinal));
        using var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "args.json")));
        Assert.Equal(type, args.RootElement.GetProperty("rlhf_type").GetString());
        Assert.Equal(tiny.ModelDir, args.RootElement.GetProperty("model").GetString());
        return checkpoint;
    }

    /// <summary>swift infer --adapters CKPT answers as the base with the checkpoint's adapter does.</summary>
    private static void InferFindsTheRun(string modelDir, string checkpoint)
    {
        var infer = CliRunner.RunWithInput(Question + "\n", "swift", "infer", "--adapters", checkpoint, "--max_new_tokens", "6", "--temperature", "0");
        Assert.True(infer.ExitCode == 0, infer.Stderr);
        using var session = ChatSession.Open(modelDir, "qwen", null, [checkpoint]);
        Assert.Equal(session.Reply(Question, session.DefaultOptions() with { DoSample = false, MaxNewTokens = 6 }).Text + "\n", infer.Stdout);
    }

    [Theory]
    [InlineData("dpo", "sigmoid")]
    [InlineData("orpo", "orpo")]
    [InlineData("simpo", "simpo")]
    [InlineData("rm", null)]
    public void SwiftRlhfTrainsOnPreferencePairsAndSwiftInferFindsTheRun(string type, string? lossType)
    {
        string output = tiny.PathFor("swift-rlhf-" + type);
        string checkpoint = RunRlhf(type, output, "dpo_en_demo_swift.jsonl");
        string run = Path.GetDirectoryName(checkpoint)!;
        // The converted pairs are registered as a ranking dataset in the run folder.
        using (var info = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "dataset_info.json"))))
            Assert.True(info.RootElement.GetProperty("0_dpo_en_demo_swift").GetProperty("ranking").GetBoolean());
        using (var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "args.json"))))
            Assert.Equal(lossType, args.RootElement.TryGetProperty("loss_type", out var loss) ? loss.GetString() : null);
        if (type == "rm") Assert.True(File.Exists(Path.Combine(checkpoint, "value_head.safetensors")));
        InferFindsTheRun(tiny.ModelDir, checkpoint);
    }

    [Fact]
    public void SwiftRlhfKtoTrainsOnLabelledAnswers()
    {
        string checkpoint = RunRlhf("kto", tiny.PathFor("swift-rlhf-kto"), "kto_en_demo_swift.jsonl", "--desirable_weight", "1.5");
        using var args = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "args.json")));
        Assert.Equal(1.5, args.RootElement.GetProperty("desirable_weight").GetDouble());
        InferFindsTheRun(tiny.ModelDir, checkpoint);
    }

    /// <summary>PPO saves checkpoints every save_steps only (LLaMA-Factory's loop), so the run asks for one at step 1.</summary>
    [Fact]
    public void SwiftRlhfPpoTrainsAgainstARewardModelOfSwiftRlhfRm()
    {
        string reward = RunRlhf("rm", tiny.PathFor("swift-rlhf-ppo-rm"), "dpo_en_demo_swift.jsonl");
        string checkpoint = RunRlhf("ppo", tiny.PathFor("swift-rlhf-ppo"), "dpo_en_demo_swift.jsonl",
            "--reward_model", tiny.ModelDir, "--reward_adapters", reward, "--max_completion_length", "4", "--save_steps", "1", "--logging_steps", "1");
        Assert.True(File.Exists(Path.Combine(checkpoint, "value_head.safetensors")));
        InferFindsTheRun(tiny.ModelDir, checkpoint);
    }

    [Fact]
    public void SwiftRlhfRefusalsNameTheArgumentOrRecordAndLeaveNoRunFolder()
    {
        string output = tiny.PathFor("swift-rlhf-refused");
        void Refused(string message, params string[] argv)
        {
            var r = CliRunner.Run(["swift", "rlhf", "--model", tiny.ModelDir, "--output_dir", output, .. argv]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Stderr);
            Assert.False(Directory.Exists(output) && Directory.GetFileSystemEntries(output).Length > 0);
        }
        string pairs = TestPaths.Fixtures("swift", "dpo_en_demo_swift.jsonl");
        Refused("--rlhf_type cpo is not supported", "--rlhf_type", "cpo", "--dataset", pairs);
        Refused("--simpo_gamma does not apply to --rlhf_type dpo", "--simpo_gamma", "0.5", "--dataset", pairs);
        Refused("--loss_type robust is not supported", "--loss_type", "robust", "--dataset", pairs);
        Refused("--rlhf_type ppo needs --reward_model", "--rlhf_type", "ppo", "--dataset", pairs);
        Refused("--kl_coef is not supported", "--rlhf_type", "ppo", "--kl_coef", "0.05", "--dataset", pairs);
        // KTO on pairs: the records have no label.
        Refused("line 1: 'label' is missing", "--rlhf_type", "kto", "--dataset", pairs);
    }

    [Fact]
    public void SwiftEvalScoresLocalGeneralQaAndGeneralMcqSetsAsTheRepliesGiveThem()
    {
        string output = tiny.PathFor("swift-eval");
        string datasetArgs = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["general_qa"] = new { local_path = TestPaths.Fixtures("swift", "eval_qa"), subset_list = new[] { "medical" } },
            ["general_mcq"] = new { local_path = TestPaths.Fixtures("swift", "eval_mcq"), subset_list = new[] { "medical" } },
        });
        var r = CliRunner.Run("swift", "eval", "--model", tiny.ModelDir, "--template", "qwen2_5", "--eval_dataset", "general_qa", "general_mcq",
            "--dataset_args", datasetArgs, "--eval_limit", "4", "--max_new_tokens", "32", "--eval_output_dir", output, "--eval_backend", "Native");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("| Model", r.Stdout);
        string work = Assert.Single(Directory.GetDirectories(output));
        string model = Path.GetFileName(tiny.ModelDir);

        using var session = ChatSession.Open(tiny.ModelDir, "qwen", null);
        var options = session.DefaultOptions() with { DoSample = false, MaxNewTokens = 32 };
        string Reply(string? system, string prompt)
        {
            session.Clear();
            session.System = system;
            return session.Reply(prompt, options).Text;
        }

        // general_qa: the first 4 records, each query asked as written (the 4th with its system prompt).
        var qa = File.ReadAllLines(TestPaths.Fixtures("swift", "eval_qa", "medical.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var qaPredictions = File.ReadAllLines(Path.Combine(work, "predictions", model, "general_qa_medical.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(4, qaPredictions.Count);
        double rougeL = 0, bleu = 0;
        for (int i = 0; i < 4; i++)
        {
            string query = qa[i].TryGetProperty("query", out var q) ? q.GetString()! : qa[i].GetProperty("question").GetString()!;
            string answer = qa[i].TryGetProperty("response", out var a) ? a.GetString()! : qa[i].GetProperty("answer").GetString()!;
            string reply = Reply(qa[i].TryGetProperty("system", out var s) ? s.GetString() : null, query);
            Assert.Equal(reply, qaPredictions[i].GetProperty("prediction").GetString());
            rougeL += GenerationMetrics.RougeL(reply, answer) / 100 / 4;
            bleu += GenerationMetrics.Bleu4(reply, answer) / 100 / 4;
        }
        using (var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(work, "reports", model, "general_qa.json"))))
        {
            var metrics = report.RootElement.GetProperty("metrics").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!, m => m.GetProperty("score").GetDouble());
            Assert.Equal(rougeL, metrics["Rouge-L-F"], 12);
            Assert.Equal(bleu, metrics["bleu-4"], 12);
            Assert.Equal(rougeL, report.RootElement.GetProperty("score").GetDouble(), 12);
        }

        // general_mcq: evalscope's Chinese single-answer prompt, the letter read from each reply, accuracy over 4 rows.
        string firstPrompt = "回答下面的单项选择题，请选出其中的正确答案。你的回答的全部内容应该是这样的格式：\"答案：[LETTER]\"（不带引号），其中 [LETTER] 是 A,B,C,D 中的一个。\n\n" +
            "问题：Which organ pumps blood through the body?\n选项：\nA) The liver\nB) The heart\nC) The lungs\nD) The kidneys\n";
        var mcqPredictions = File.ReadAllLines(Path.Combine(work, "predictions", model, "general_mcq_medical.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(4, mcqPredictions.Count);
        Assert.Equal(firstPrompt, mcqPredictions[0].GetProperty("input").GetString());
        string[] targets = ["B", "B", "D", "A"];
        int correct = 0;
        for (int i = 0; i < 4; i++)
        {
            string reply = Reply(null, mcqPredictions[i].GetProperty("input").GetString()!);
            Assert.Equal(reply, mcqPredictions[i].GetProperty("prediction").GetString());
            string? choice = SwiftEval.ExtractChoice(reply, 4);
            var extracted = mcqPredictions[i].GetProperty("extracted_prediction");
            Assert.Equal(choice, extracted.ValueKind == JsonValueKind.Null ? null : extracted.GetString());
            if (choice == targets[i]) correct++;
        }
        using (var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(work, "reports", model, "general_mcq.json"))))
            Assert.Equal(correct / 4.0, report.RootElement.GetProperty("score").GetDouble(), 12);
    }

    [Fact]
    public void SwiftEvalRefusesNamedBenchmarksAndWritesNothing()
    {
        string output = tiny.PathFor("swift-eval-refused");
        var r = CliRunner.Run("swift", "eval", "--model", tiny.ModelDir, "--eval_dataset", "gsm8k", "--eval_output_dir", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--eval_dataset gsm8k: evalscope downloads this benchmark", r.Stderr);
        Assert.Contains("general_qa", r.Stderr);
        Assert.False(Directory.Exists(output));
    }
}
