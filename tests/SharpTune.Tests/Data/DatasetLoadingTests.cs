using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data;

/// <summary>Registry semantics, file layouts, max_samples/num_samples, concatenation, val_size and eval_dataset, packing.</summary>
public sealed class DatasetLoadingTests : IDisposable
{
    private static readonly string DemoDir = TestPaths.Fixtures("llamafactory");
    private static readonly Tokenizer Tokenizer = SftPreprocessFixture.Get("qwen.json").Tokenizer;
    private static readonly ChatTemplate Qwen = ChatTemplates.Get("qwen");
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private static PreparedData Load(DataArguments args, int seed = 7) => SupervisedDatasets.Load(args, Tokenizer, Qwen, seed);

    private static string Trained(SupervisedExample e) => Tokenizer.Decode(e.Labels.Where(l => l != -100).ToArray());

    private static List<string> Outputs(string file) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(DemoDir, file))).RootElement.EnumerateArray()
            .Select(r => r.GetProperty("output").GetString()! + "<|im_end|>\n").ToList();

    [Fact]
    public void MaxSamplesTakesTheFirstRecordsOfEachDatasetAndDatasetsConcatenateInOrder()
    {
        var data = Load(new DataArguments { Dataset = ["identity, alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 5 });

        var expected = Outputs("identity.json").Take(5).Concat(Outputs("alpaca_en_demo.json").Take(5));
        Assert.Equal(expected, data.Train.Select(Trained));
        Assert.Equal([new DatasetSummary("identity", "train", 5, 5, 0), new DatasetSummary("alpaca_en_demo", "train", 5, 5, 0)], data.Report.Datasets);
    }

    [Fact]
    public void ValSizeFractionHoldsOutTheCeilingAndSplitsBySeed()
    {
        var args = new DataArguments { Dataset = ["alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 95, ValSize = 0.1 };
        var all = Load(new DataArguments { Dataset = ["alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 95 }).Train.Select(Trained).ToList();

        var a = Load(args, seed: 3);
        var again = Load(args, seed: 3);
        var other = Load(args, seed: 4);

        Assert.Equal(10, a.Eval.Count); // ceil(0.1 × 95)
        Assert.Equal(85, a.Train.Count);
        Assert.Equal((85, 10), (a.Report.TrainExamples, a.Report.EvalExamples));
        Assert.Equal(all.Order(), a.Train.Concat(a.Eval).Select(Trained).Order());
        Assert.Equal(a.Eval.Select(Trained), again.Eval.Select(Trained));
        Assert.Equal(a.Train.Select(Trained), again.Train.Select(Trained));
        Assert.NotEqual(a.Eval.Select(Trained), other.Eval.Select(Trained));
        // The training part is shuffled too, as train_test_split returns it in permutation order.
        Assert.NotEqual(all.Where(t => a.Train.Select(Trained).Contains(t)), a.Train.Select(Trained));
    }

    [Fact]
    public void ValSizeCountAndItsLimits()
    {
        var data = Load(new DataArguments { Dataset = ["identity"], DatasetDir = DemoDir, ValSize = 25 });
        Assert.Equal((66, 25), (data.Train.Count, data.Eval.Count));

        var e = Assert.Throws<ArgumentException>(() => Load(new DataArguments { Dataset = ["identity"], DatasetDir = DemoDir, ValSize = 91 }));
        Assert.Equal("val_size 91 would hold out 91 of 91 examples; it must leave at least one example for each of train and eval", e.Message);
        e = Assert.Throws<ArgumentException>(() => Load(new DataArguments { Dataset = ["identity"], EvalDataset = ["alpaca_en_demo"], DatasetDir = DemoDir, ValSize = 0.1 }));
        Assert.Equal("val_size: cannot be combined with eval_dataset", e.Message);
    }

    [Fact]
    public void EvalDatasetIsLoadedSeparately()
    {
        var data = Load(new DataArguments { Dataset = ["identity"], EvalDataset = ["alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 4 });

        Assert.Equal(Outputs("identity.json").Take(4), data.Train.Select(Trained));
        Assert.Equal(Outputs("alpaca_en_demo.json").Take(4), data.Eval.Select(Trained));
        Assert.Equal("eval", data.Report.Datasets[1].Split);
    }

    [Fact]
    public void NumSamplesDrawsEveryRecordOnceThenRepeats()
    {
        string identity = Path.Combine(DemoDir, "identity.json");
        dir.Info($$$"""{"more": {"file_name": {{{System.Text.Json.JsonSerializer.Serialize(identity)}}}, "num_samples": 120}}""");

        var data = Load(new DataArguments { Dataset = ["more"], DatasetDir = dir.Path });

        Assert.Equal(120, data.Train.Count);
        Assert.Equal(Outputs("identity.json").Distinct().Order(), data.Train.Select(Trained).Distinct().Order());
        Assert.NotEqual(Outputs("identity.json").Take(91), data.Train.Take(91).Select(Trained));
    }

    [Fact]
    public void AFolderIsAllItsFilesByNameArraysAndJsonLines()
    {
        dir.Info("""{"parts": {"file_name": "parts"}}""")
            .Write("parts/b.jsonl", "{\"instruction\": \"q3\", \"output\": \"a3\"}\n{\"instruction\": \"q4\"}\n")
            .Write("parts/a.json", """[{"instruction": "q1", "output": "a1"}, {"instruction": "q2", "input": "i2", "output": "a2"}]""");

        var e = Assert.Throws<InvalidDataException>(() => Load(new DataArguments { Dataset = ["parts"], DatasetDir = dir.Path }));
        Assert.Equal($"{Path.Combine("parts", "b.jsonl")}: line 2: 'output' is missing", e.Message);

        var data = Load(new DataArguments { Dataset = ["parts"], DatasetDir = dir.Path, SkipInvalidRecords = true });
        Assert.Equal(["a1<|im_end|>\n", "a2<|im_end|>\n", "a3<|im_end|>\n"], data.Train.Select(Trained));
        Assert.EndsWith("<|im_start|>user\nq2\ni2<|im_end|>\n<|im_start|>assistant\na2<|im_end|>\n", Tokenizer.Decode(data.Train[1].InputIds));
    }

    [Fact]
    public void OpenAiMessagesMapThroughTags()
    {
        dir.Info("""
            {"oai": {"file_name": "oai.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                     "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                              "observation_tag": "tool", "system_tag": "system"}}}
            """)
            .Write("oai.jsonl", """
                {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A1"}, {"role": "tool", "content": "T"}, {"role": "assistant", "content": "A2"}]}
                {"messages": [{"role": "user", "content": "U"}, {"role": "function_call", "content": "{}"}]}
                """);

        var data = Load(new DataArguments { Dataset = ["oai"], DatasetDir = dir.Path, SkipInvalidRecords = true });

        Assert.Equal(
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\nT\n</tool_response><|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n",
            Tokenizer.Decode(data.Train.Single().InputIds));
        Assert.Equal("A1<|im_end|>\nA2<|im_end|>\n", Trained(data.Train[0]));
        // With tags given, an unlisted tag (here function_tag) is unset, as in LLaMA-Factory.
        Assert.Equal(
            "oai.jsonl: line 2: 'messages'[1] has role 'function_call' where a assistant message belongs (after an optional first system message, messages alternate user|tool and assistant)",
            data.Report.Problems.Single());
    }

    [Fact]
    public void RegistryDefaultsAndColumnOverrides()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""
            {"a": {"file_name": "a.json"},
             "b": {"file_name": "b.json", "columns": {"prompt": "q", "response": "r", "system": "sys"}},
             "c": {"file_name": "c.json", "formatting": "sharegpt", "columns": {"messages": "m", "tools": "t"}, "tags": {"role_tag": "role", "content_tag": "text", "user_tag": "u", "assistant_tag": "a"}}}
            """);
        var a = DatasetEntry.Parse("a", doc.RootElement.GetProperty("a"), "info");
        var b = DatasetEntry.Parse("b", doc.RootElement.GetProperty("b"), "info");
        var c = DatasetEntry.Parse("c", doc.RootElement.GetProperty("c"), "info");

        Assert.Equal((DatasetFormatting.Alpaca, "instruction", "input", "output", (string?)null, (string?)null), (a.Formatting, a.Prompt, a.Query, a.Response, a.History, a.System));
        Assert.Equal(("q", (string?)null, "r", "sys"), (b.Prompt, b.Query, b.Response, b.System));
        Assert.Equal((DatasetFormatting.Sharegpt, "m", "t", "role", "text", "u", "a"), (c.Formatting, c.Messages, c.Tools, c.RoleTag, c.ContentTag, c.UserTag, c.AssistantTag));
        Assert.Equal(((string?)null, (string?)null, (string?)null), (c.ObservationTag, c.FunctionTag, c.SystemTag));
    }

    [Fact]
    public void PackingFillsBlocksOfCutoffLenWithWholeExamples()
    {
        var plain = Load(new DataArguments { Dataset = ["alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 60, CutoffLen = 512 });
        var packed = Load(new DataArguments { Dataset = ["alpaca_en_demo"], DatasetDir = DemoDir, MaxSamples = 60, CutoffLen = 512, Packing = true });

        Assert.True(packed.Report.Packed);
        Assert.InRange(packed.Train.Count, plain.Train.Sum(e => e.Length) / 512 + 1, plain.Train.Count - 1);
        Assert.All(packed.Train, b => Assert.InRange(b.Length, 1, 512));
        Assert.All(packed.Train, b => Assert.All(b.AttentionMask, m => Assert.Equal(1, m)));
        Assert.Equal(plain.Train.Sum(e => e.Length), packed.Train.Sum(b => b.Length));
        // Every answer is trained exactly once, each block being whole examples back to back.
        var answers = plain.Train.Select(Trained).Order().ToList();
        var packedAnswers = packed.Train.SelectMany(b => Tokenizer.Decode(b.Labels.Where(l => l != -100).ToArray())
            .Split("<|im_end|>\n", StringSplitOptions.RemoveEmptyEntries).Select(s => s + "<|im_end|>\n")).Order().ToList();
        Assert.Equal(answers, packedAnswers);
    }
}
