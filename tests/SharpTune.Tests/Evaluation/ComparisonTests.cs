using SharpTune.Data;
using SharpTune.Evaluation.Comparison;
using SharpTune.Evaluation.Metrics;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tests.Api;
using SharpTune.Tests.Cli;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Evaluation;

/// <summary>The tiny preset model and the API tests' LoRA adapter for it, written once for the comparison tests.</summary>
public sealed class ComparisonFixture : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sharptune-compare-").FullName;
    public string ModelDir => Path.Combine(Root, "tiny");
    public string AdapterDir => Path.Combine(Root, "lora-a");
    public Tokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }

    public ComparisonFixture()
    {
        ModelInitializer.Create(ModelPreset.Get("tiny"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), ModelDir, seed: 1);
        ApiServerFixture.WriteAdapter(AdapterDir);
        Tokenizer = Tokenizer.FromDirectory(ModelDir);
        Template = ChatTemplates.ForModel("auto", ModelDir);
    }

    /// <summary>A dataset_dir with one alpaca dataset "qa" holding the given (instruction, output) records.</summary>
    public string WriteDataset(string name, params (string Instruction, string Output)[] records)
    {
        string dir = Path.Combine(Root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset_info.json"), """{"qa": {"file_name": "qa.json"}}""");
        File.WriteAllText(Path.Combine(dir, "qa.json"), System.Text.Json.JsonSerializer.Serialize(
            records.Select(r => new Dictionary<string, string> { ["instruction"] = r.Instruction, ["input"] = "", ["output"] = r.Output })));
        return dir;
    }

    public string WriteFile(string name, string text)
    {
        string path = Path.Combine(Root, name);
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public sealed class ComparisonTests(ComparisonFixture fx) : IClassFixture<ComparisonFixture>
{
    [Fact]
    public void QuestionsFromAFileAndFromADatasetGetThePromptChatAndTrainingRender()
    {
        const string question = "Who are you?";
        string file = fx.WriteFile("one.txt", $"\n  {question}  \n\n");
        string datasetDir = fx.WriteDataset("parity", (question, "I am TuneBot."));

        var fromFile = ComparisonQuestions.FromFile(file, fx.Tokenizer, fx.Template, system: null);
        var fromDataset = ComparisonQuestions.FromDatasets(new DataArguments { EvalDataset = ["qa"], DatasetDir = datasetDir }, fx.Tokenizer, fx.Template, seed: 42);
        int[] chat = fx.Template.EncodePrompt(fx.Tokenizer, [new ChatMessage(ChatRole.User, question)]);
        var training = new SupervisedProcessor(fx.Tokenizer, fx.Template, cutoffLen: 4096, trainOnPrompt: false, maskHistory: false)
            .Encode(new AlignedExample([new(ChatRole.User, question), new(ChatRole.Assistant, "I am TuneBot.")], null, null));

        var asked = Assert.Single(fromFile);
        Assert.Equal(question, asked.Question);
        Assert.Null(asked.Reference);
        Assert.Equal(chat, asked.PromptIds);
        Assert.Equal(chat, Assert.Single(fromDataset).PromptIds);
        Assert.Equal(chat, training.InputIds[..chat.Length]);
        Assert.Equal(-100, training.Labels[chat.Length - 1]);
        Assert.NotEqual(-100, training.Labels[chat.Length]);
        Assert.Equal(question, fromDataset[0].Question);
        Assert.Equal("I am TuneBot.\n", fromDataset[0].Reference);
        string rendered = fx.Tokenizer.Decode(chat, skipSpecialTokens: false);
        Assert.StartsWith("<|im_start|>system\nYou are Qwen", rendered);
        Assert.EndsWith("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n", rendered);
    }

    [Fact]
    public void AQuestionsOwnSystemPromptWinsOverTheDefaultOne()
    {
        string file = fx.WriteFile("systems.jsonl",
            """
            {"question": "Hi", "system": "Be brief."}
            {"question": "Hello", "reference": "Hello!"}
            """);

        var asked = ComparisonQuestions.FromFile(file, fx.Tokenizer, fx.Template, system: "Answer in French.");

        Assert.Equal(2, asked.Count);
        Assert.Contains("<|im_start|>system\nBe brief.<|im_end|>", fx.Tokenizer.Decode(asked[0].PromptIds, skipSpecialTokens: false));
        Assert.Contains("<|im_start|>system\nAnswer in French.<|im_end|>", fx.Tokenizer.Decode(asked[1].PromptIds, skipSpecialTokens: false));
        Assert.Null(asked[0].Reference);
        Assert.Equal("Hello!", asked[1].Reference);
    }

    [Theory]
    [InlineData("bad.jsonl", "{\"question\": \"ok\"}\n{\"reference\": \"x\"}\n", "bad.jsonl: line 2: field \"question\" is missing")]
    [InlineData("bad2.jsonl", "{\"question\": \"ok\"}\n\n{\"question\": 3}\n", "bad2.jsonl: line 3: field \"question\" must be a string, got number")]
    [InlineData("bad3.jsonl", "{\"question\": \"ok\"\n", "bad3.jsonl: line 1: not valid JSON")]
    [InlineData("bad4.json", "[{\"question\": \"ok\"}, {\"question\": \"a\", \"reference\": [1]}]", "bad4.json: record 1: field \"reference\" must be a string, got array")]
    [InlineData("bad5.json", "{\"question\": \"ok\"}", "bad5.json: expected a JSON array")]
    [InlineData("empty.txt", "\n   \n", "empty.txt: holds no questions")]
    [InlineData("blank.jsonl", "{\"question\": \"  \"}", "blank.jsonl: line 1: field \"question\" is empty")]
    public void AMalformedQuestionsFileNamesTheFileLineAndField(string name, string text, string expected)
    {
        string path = fx.WriteFile(name, text);

        var e = Assert.Throws<InvalidDataException>(() => ComparisonQuestions.FromFile(path, fx.Tokenizer, fx.Template, null));

        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EachColumnHoldsThatModelsOwnAnswersWithTheSameSeedsWhateverTheBatch()
    {
        string file = fx.WriteFile("three.jsonl",
            """
            {"question": "Who are you?", "reference": "I am TuneBot."}
            {"question": "What is the capital of France? Answer in one word, please."}
            {"question": "你好", "reference": "你好！"}
            """);
        var questions = ComparisonQuestions.FromFile(file, fx.Tokenizer, fx.Template, null);
        var options = new GenerationOptions { MaxNewTokens = 6, DoSample = true, Temperature = 0.9f, Seed = 7 };
        using var baseModel = DecoderModel.LoadForGeneration(fx.ModelDir);
        using var adapted = DecoderModel.LoadForGeneration(fx.ModelDir, adapterDirectories: [fx.AdapterDir]);

        var baseColumn = ComparisonRun.Answer("base", null, baseModel, fx.Tokenizer, fx.Template, questions, options, batchSize: 2, padTokenId: 0);
        var adapterColumn = ComparisonRun.Answer("lora-a", fx.AdapterDir, adapted, fx.Tokenizer, fx.Template, questions, options, batchSize: 1, padTokenId: 0);

        for (int i = 0; i < questions.Count; i++)
        {
            foreach (var (model, column) in new[] { (baseModel, baseColumn), (adapted, adapterColumn) })
            {
                var alone = new Generator(model).Generate(questions[i].PromptIds, options with { Seed = 7 + i });
                var answer = column.Answers[i];
                Assert.Equal(fx.Tokenizer.Decode(alone.NewIds, skipSpecialTokens: true), answer.Text);
                Assert.Equal(alone.NewIds.Length, answer.Tokens);
                Assert.Equal(alone.FinishReason, answer.FinishReason);
                Assert.Equal(questions[i].Reference is string r ? GenerationMetrics.Score(answer.Text, r) : null, answer.Scores);
            }
        }
        Assert.NotEqual(baseColumn.Answers.Select(a => a.Text), adapterColumn.Answers.Select(a => a.Text));
        var mean = baseColumn.MeanScores()!;
        var expected = GenerationMetrics.Compute([baseColumn.Answers[0].Text, baseColumn.Answers[2].Text], ["I am TuneBot.", "你好！"]);
        Assert.Equal(expected, mean);
    }

    [Fact]
    public void TheReportShowsEveryAnswerAsWrittenInMarkdownAndHtml()
    {
        ComparisonQuestion[] questions =
        [
            new("Is a|b <b>bold</b>?", [1], "yes | *really*\n"),
            new("Second?", [2], null),
        ];
        var columns = new[]
        {
            new ComparisonColumn("base", null,
                [new("<script>alert(1)</script>", 9, FinishReason.Length, GenerationMetrics.Score("<script>alert(1)</script>", "yes | *really*\n")), new("line one\nline two", 4, FinishReason.Stop, null)],
                TimeSpan.FromSeconds(2)),
            new ComparisonColumn("my-lora", "out/my-lora",
                [new("yes | *really*", 5, FinishReason.Stop, GenerationMetrics.Score("yes | *really*", "yes | *really*\n")), new("", 0, FinishReason.Stop, null)],
                TimeSpan.FromSeconds(1)),
        };
        var report = new ComparisonReport([new("Base model", "models/tiny")], questions, columns);

        string md = report.ToMarkdown();
        string html = report.ToHtml();
        string dir = Path.Combine(fx.Root, "report");
        var (mdPath, htmlPath) = report.Write(dir);

        Assert.Contains("### 1. Is a\\|b \\<b\\>bold\\</b\\>?", md);
        Assert.Contains("| *reference* | yes \\| \\*really\\* | | | |", md);
        Assert.Contains("| **base** | \\<script\\>alert(1)\\</script\\> | 9 (cut) |", md);
        Assert.Contains("| **base** | line one<br>line two | 4 |", md);
        Assert.Contains("| **my-lora** | *(empty)* | 0 |", md);
        string baseBleu = F2(GenerationMetrics.Score("<script>alert(1)</script>", "yes | *really*\n").Bleu4);
        string baseRouge = F2(GenerationMetrics.Score("<script>alert(1)</script>", "yes | *really*\n").RougeL);
        Assert.Contains($"| base | base model | 6.5 | 21.0 | 1 | {baseBleu} | {baseRouge} | 6.5 |", md);
        string loraBleu = F2(GenerationMetrics.Score("yes | *really*", "yes | *really*\n").Bleu4);
        Assert.Contains($"| my-lora | out/my-lora | 2.5 | 7.0 | 0 | {loraBleu} | 100.00 | 5.0 |", md);
        Assert.DoesNotContain("<script>", html);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html);
        Assert.Contains("<h3>1. Is a|b &lt;b&gt;bold&lt;/b&gt;?</h3>", html);
        Assert.Contains("9 tokens, 25 characters, cut at max_new_tokens · BLEU-4", html);
        Assert.Contains("<div class=\"text\">yes | *really*</div>", html);
        Assert.Equal(2, html.Split("<section>").Length - 1);
        Assert.Equal(md, File.ReadAllText(mdPath));
        Assert.Equal(html, File.ReadAllText(htmlPath));
        Assert.Equal(new[] { "compare.html", "compare.md" }, Directory.GetFiles(dir).Select(Path.GetFileName).Order());
    }

    private static string F2(double value) => value.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
}

[Collection(CliCollection.Name)]
public sealed class CompareCommandTests(ComparisonFixture fx) : IClassFixture<ComparisonFixture>
{
    [Fact]
    public void CompareWritesTheSideBySideReportForADataset()
    {
        string datasetDir = fx.WriteDataset("cli-data", ("Who are you?", "I am TuneBot."), ("hi", "Hello!"), ("Unused", "never asked"));
        string output = Path.Combine(fx.Root, "cli-report");

        var result = CliRunner.Run("compare", "--model", fx.ModelDir, "--adapter", fx.AdapterDir, "--dataset", "qa", "--dataset-dir", datasetDir,
            "--max-samples", "2", "--max-new-tokens", "5", "--out", output);

        Assert.True(result.ExitCode == 0, result.Stderr);
        string md = File.ReadAllText(Path.Combine(output, "compare.md"));
        string html = File.ReadAllText(Path.Combine(output, "compare.html"));
        Assert.Contains("### 1. Who are you?", md);
        Assert.Contains("### 2. hi", md);
        Assert.DoesNotContain("Unused", md);
        Assert.Contains("| *reference* | I am TuneBot. |", md);
        Assert.Matches(@"- \*\*Decoding\*\*: greedy, max\\_new\\_tokens 5, repetition\\_penalty [0-9.]+, seed 42\n", md);
        Assert.Contains("<h4>lora-a</h4>", html);
        Assert.Matches(@"^base: \d+\.\d tokens per answer, BLEU-4 \d+\.\d\d, ROUGE-L \d+\.\d\d\nlora-a: ", result.Stdout.ReplaceLineEndings("\n"));
        Assert.Contains("[base 2/2 examples", result.Stderr);
        Assert.Contains("[lora-a 2/2 examples", result.Stderr);
    }

    [Fact]
    public void CompareAsksForExactlyOneSourceOfQuestions()
    {
        string questions = fx.WriteFile("q.txt", "Hi\n");

        var neither = CliRunner.Run("compare", "--model", fx.ModelDir, "--adapter", fx.AdapterDir);
        var both = CliRunner.Run("compare", "--model", fx.ModelDir, "--adapter", fx.AdapterDir, "--questions", questions, "--dataset", "qa");
        var samples = CliRunner.Run("compare", "--model", fx.ModelDir, "--adapter", fx.AdapterDir, "--questions", questions, "--max-samples", "3");

        Assert.Equal(1, neither.ExitCode);
        Assert.Contains("error: give the questions either as --questions FILE or as --dataset NAME (not both)", neither.Stderr);
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("--questions FILE or as --dataset NAME", both.Stderr);
        Assert.Equal(1, samples.ExitCode);
        Assert.Contains("error: --max-samples applies to --dataset only", samples.Stderr);
    }

    [Fact]
    public void AWrongAdapterFolderFailsBeforeAnythingIsGenerated()
    {
        string questions = fx.WriteFile("q2.txt", "Hi\n");
        string output = Path.Combine(fx.Root, "never-written");

        var result = CliRunner.Run("compare", "--model", fx.ModelDir, "--adapter", fx.AdapterDir, "--adapter", Path.Combine(fx.Root, "missing-adapter"),
            "--questions", questions, "--out", output);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("missing-adapter", result.Stderr);
        Assert.DoesNotContain("answering with", result.Stderr);
        Assert.False(Directory.Exists(output));
    }
}
