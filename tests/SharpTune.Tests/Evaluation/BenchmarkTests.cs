using System.IO.Compression;
using SharpTune.Engine;
using SharpTune.Evaluation.Benchmarks;
using SharpTune.IO.Safetensors;
using SharpTune.Model;
using SharpTune.Templates;
using SharpTune.Tests.IO;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Tests.Evaluation;

/// <summary>
/// `sharptune eval`'s benchmark in LLaMA-Factory's evaluation-set format, on a constructed model whose answer is
/// known: every layer's output projections are zero, so the final hidden state is the last token's embedding, and
/// that embedding points along the token of "B" alone among A–D: the model answers B to every question.
/// </summary>
public sealed class BenchmarkTests : IClassFixture<BenchmarkTests.AlwaysBModel>, IDisposable
{
    private readonly AlwaysBModel model;
    private readonly TempDir dir = new();

    public BenchmarkTests(AlwaysBModel model) => this.model = model;

    public void Dispose() => dir.Dispose();

    /// <summary>The tiny preset with zeroed o_proj/down_proj and a basis-vector embedding for A–D and the prompt's last token.</summary>
    public sealed class AlwaysBModel : IDisposable
    {
        private readonly TempDir root = new();
        public string Dir { get; }
        public Tokenizer Tokenizer { get; }
        public ChatTemplate Template { get; } = ChatTemplates.Get("qwen");

        public AlwaysBModel()
        {
            Dir = root.File("always-b");
            ModelInitializer.Create(ModelPreset.Get("tiny"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), Dir, seed: 3);
            Tokenizer = Tokenizer.FromDirectory(Dir);
            int hidden = ModelPreset.Get("tiny").HiddenSize;
            int last = Tokenizer.Encode(Template.Render([new ChatMessage(ChatRole.User, "q")], addGenerationPrompt: true))[^1];
            var rows = new Dictionary<int, int> { [last] = 1 };
            for (int c = 0; c < 4; c++) rows[Tokenizer.Encode(((char)('A' + c)).ToString())[^1]] = c;

            string path = Path.Combine(Dir, "model.safetensors");
            List<(string, DType, long[], ReadOnlyMemory<byte>)> tensors;
            using (var file = SafetensorsFile.Open(path))
                tensors = file.Tensors.Select(t =>
                {
                    if (t.Name.EndsWith("o_proj.weight") || t.Name.EndsWith("down_proj.weight"))
                        return (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)new byte[t.ByteSize]);
                    if (t.Name != "model.embed_tokens.weight")
                        return (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)file.Bytes(t.Name).ToArray());
                    var values = file.ReadFloat32(t.Name);
                    foreach (var (token, axis) in rows)
                    {
                        var row = values.AsSpan(token * hidden, hidden);
                        row.Clear();
                        row[axis] = 1f;
                    }
                    return (t.Name, t.DType, t.Shape, SafetensorsWriter.EncodeFloat32(values, t.DType));
                }).ToList();
            SafetensorsWriter.Write(path, tensors, SafetensorsWriter.PyTorchMetadata);
        }

        public void Dispose() => root.Dispose();
    }

    private static string Row(params string[] fields) => string.Join(",", fields.Select(f => "\"" + f.Replace("\"", "\"\"") + "\"")) + "\n";

    /// <summary>An mmlu-layout set: algebra (STEM, answers B B B) and history (Humanities, answers A B C D), two dev examples each.</summary>
    private string WriteMmlu(bool zipped)
    {
        string taskDir = dir.File("evaluation");
        string folder = Path.Combine(taskDir, "mmlu");
        string data = zipped ? dir.File("staging") : folder;
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "mapping.json"), """
            {"algebra": {"name": "abstract algebra", "category": "STEM"}, "history": {"name": "world history", "category": "Humanities"}}
            """);
        void Csv(string split, string subject, string text)
        {
            string path = Path.Combine(data, "data", split, $"{subject}_{split}.csv");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, text);
        }
        Csv("test", "algebra", Row("1+1?", "1", "2", "3", "4", "B") + Row("2+1?", "2", "3", "4", "5", "B") + Row("Find x, if x=2", "1", "2", "3", "4", "B"));
        Csv("dev", "algebra", Row("0+1?", "0", "1", "2", "3", "B") + Row("0+0?", "0", "1", "2", "3", "A"));
        Csv("test", "history", Row("Q1", "a", "b", "c", "d", "A") + Row("Q2", "a", "b", "c", "d", "B") + Row("Q3", "a", "b", "c", "d", "C") + Row("Q4", "a", "b", "c", "d", "D"));
        Csv("dev", "history", Row("E1", "a", "b", "c", "d", "C") + Row("E2", "a", "b", "c", "d", "D"));
        if (zipped) ZipFile.CreateFromDirectory(data, Path.Combine(folder, "mmlu.zip"));
        return taskDir;
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 3)]
    public void TheConstructedModelAnswersBAndAccuracyIsCountedPerSubjectAndCategory(bool zipped, int batchSize)
    {
        var task = BenchmarkTask.Open(WriteMmlu(zipped), "mmlu_test");
        using var decoder = DecoderModel.LoadForGeneration(model.Dir);
        var lines = new List<string>();

        var result = BenchmarkRun.Run(decoder, model.Tokenizer, model.Template, task, new BenchmarkSettings(NShot: 2, BatchSize: batchSize), lines.Add);

        Assert.Equal([("algebra", 3, 100.0), ("history", 4, 25.0)], result.SubjectAccuracies.Select(s => (s.Subject.Name, s.Questions, s.Accuracy)));
        Assert.Equal("        Average: 57.14\n           STEM: 100.00\n     Humanities: 25.00", result.ScoreInfo());
        Assert.Equal(["[1/2] algebra (STEM): 3/3 correct", "[2/2] history (Humanities): 1/4 correct"], lines);

        string saveDir = dir.File("results");
        result.Save(saveDir);
        Assert.Equal("""
            {
              "algebra": {
                "0": "B",
                "1": "B",
                "2": "B"
              },
              "history": {
                "0": "B",
                "1": "B",
                "2": "B",
                "3": "B"
              }
            }
            """, File.ReadAllText(Path.Combine(saveDir, "results.json")));
        Assert.Equal(result.ScoreInfo(), File.ReadAllText(Path.Combine(saveDir, "results.log")));
        Assert.Equal(["results.json", "results.log"], Directory.GetFiles(saveDir).Select(Path.GetFileName).Order());
        Assert.Contains("already exists", Assert.Throws<IOException>(() => result.Save(saveDir)).Message);
    }

    [Fact]
    public void PromptsFollowLlamaFactorysEvalTemplates()
    {
        var target = new BenchmarkQuestion("What is 2+2?", [("A", "3"), ("B", "4"), ("C", "5"), ("D", "6")], "B");
        var shot = new BenchmarkQuestion("What is 1+1?", [("A", "2"), ("B", "3"), ("C", "4"), ("D", "5")], "A");

        var en = BenchmarkPrompt.ForLanguage("en").Messages(target, [shot], "elementary mathematics");
        Assert.Equal([ChatRole.User, ChatRole.Assistant, ChatRole.User, ChatRole.Assistant], en.Select(m => m.Role));
        Assert.Equal("The following are multiple choice questions (with answers) about elementary mathematics.\n\n" +
            "What is 1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:", en[0].Content);
        Assert.Equal("A", en[1].Content);
        Assert.Equal("What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:", en[2].Content);
        Assert.Equal("B", en[3].Content);

        var zh = BenchmarkPrompt.ForLanguage("zh").Messages(target, [], "高等数学");
        Assert.Equal("以下是中国关于高等数学考试的单项选择题，请选出其中的正确答案。\n\nWhat is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\n答案：", zh[0].Content);
        Assert.Throws<ArgumentException>(() => BenchmarkPrompt.ForLanguage("fr"));
    }

    [Fact]
    public void CmmluAndCevalLayoutsAreReadWithTheirHeaders()
    {
        string taskDir = dir.File("evaluation");
        Directory.CreateDirectory(Path.Combine(taskDir, "cmmlu", "test"));
        File.WriteAllText(Path.Combine(taskDir, "cmmlu", "mapping.json"), """{"agronomy": {"name": "农学", "category": "Other"}}""");
        File.WriteAllText(Path.Combine(taskDir, "cmmlu", "test", "agronomy.csv"), ",Question,A,B,C,D,Answer\n0,问题一,甲,乙,丙,丁,C\n");
        Directory.CreateDirectory(Path.Combine(taskDir, "ceval", "val"));
        File.WriteAllText(Path.Combine(taskDir, "ceval", "mapping.json"), """{"accountant": {"name": "注册会计师", "category": "Other"}}""");
        File.WriteAllText(Path.Combine(taskDir, "ceval", "val", "accountant_val.csv"), "id,question,A,B,C,D,answer,explanation\n0,问题,一,二,三,四,D,\"解释, 有逗号\"\n");

        var cmmlu = BenchmarkTask.Open(taskDir, "cmmlu_test");
        var q = Assert.Single(cmmlu.Questions(cmmlu.Subjects[0], "test"));
        Assert.Equal(("问题一", "C"), (q.Question, q.Answer));
        Assert.Equal([("A", "甲"), ("B", "乙"), ("C", "丙"), ("D", "丁")], q.Choices);

        var ceval = BenchmarkTask.Open(taskDir, "ceval_validation");
        Assert.Equal(new BenchmarkSubject("accountant", "注册会计师", "Other"), Assert.Single(ceval.Subjects));
        var c = Assert.Single(ceval.Questions(ceval.Subjects[0], "validation"));
        Assert.Equal(("问题", "D", "四"), (c.Question, c.Answer, c.Choices[3].Text));

        Assert.Contains("'mmlu_dev' names no split", Assert.Throws<ArgumentException>(() => BenchmarkTask.Open(taskDir, "mmlu_dev")).Message);
        Assert.Contains("not a benchmark", Assert.Throws<ArgumentException>(() => BenchmarkTask.Open(taskDir, "gsm8k_test")).Message);
        Assert.Contains("mapping.json' does not exist", Assert.Throws<FileNotFoundException>(() => BenchmarkTask.Open(taskDir, "mmlu_test")).Message);
        var missing = Assert.Throws<InvalidDataException>(() => ceval.Questions(ceval.Subjects[0], "train"));
        Assert.Contains("dev/accountant_dev.csv does not exist", missing.Message);
    }
}
