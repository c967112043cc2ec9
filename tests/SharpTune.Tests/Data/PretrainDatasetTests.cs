using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Data;

/// <summary>
/// Stage pt data, by the rules of LLaMA-Factory's PretrainDatasetProcessor and DataCollatorForLanguageModeling:
/// text + eos, concatenated and cut into cutoff_len blocks per preprocessing batch (remainder dropped), or cut per
/// text without packing; labels are the ids except the pad token's.
/// </summary>
public sealed class PretrainDatasetTests : IDisposable
{
    private static readonly string TokenizerDir = TestPaths.Fixtures("tokenizers", "qwen2.5-instruct");
    private static readonly Tokenizer Qwen = Tokenizer.FromDirectory(TokenizerDir);
    private const int ImEnd = 151645, EndOfText = 151643, ImStart = 151644;
    private static readonly string[] Texts =
    [
        "Machine learning is the study of algorithms that improve through experience.",
        "A decoder-only transformer predicts the next token.",
        "Continued pretraining adapts a model to the text of a new domain.",
    ];
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private static int[] Ids(string text) => Qwen.Encode(text);

    private PreparedData Load(int cutoffLen, bool packing, int batchSize = 1000, string tokenizerDir = "", Tokenizer? tokenizer = null)
    {
        var args = new DataArguments { Dataset = ["wiki"], DatasetDir = dir.Path, CutoffLen = cutoffLen, Packing = packing, PreprocessingBatchSize = batchSize };
        return PretrainDatasets.Load(args, tokenizer ?? Qwen, ChatTemplates.Get("qwen"), tokenizerDir.Length > 0 ? tokenizerDir : TokenizerDir, seed: 1);
    }

    private DataDir TextDataset(string text) =>
        dir.Info("""{"wiki": {"file_name": "wiki.txt", "columns": {"prompt": "text"}}}""").Write("wiki.txt", text);

    [Fact]
    public void PackingConcatenatesTextsEachEndedByTheEosAndDropsTheLastPartialBlock()
    {
        TextDataset(string.Join("\n", Texts) + "\n");
        var stream = Texts.SelectMany(t => Ids(t).Append(ImEnd)).ToArray();
        const int block = 16;

        var data = Load(block, packing: true);

        Assert.Equal(stream.Length / block, data.Train.Count);
        for (int i = 0; i < data.Train.Count; i++)
        {
            var expected = stream[(i * block)..((i + 1) * block)];
            Assert.Equal(expected, data.Train[i].InputIds);
            Assert.Equal(expected, data.Train[i].Labels);
            Assert.All(data.Train[i].AttentionMask, m => Assert.Equal(1, m));
        }
        Assert.True(stream.Length % block != 0, "the test needs a partial last block to show that it is dropped");
        Assert.Empty(data.Eval);
    }

    [Fact]
    public void EachPreprocessingBatchIsPackedOnItsOwn()
    {
        TextDataset(string.Join("\n", Texts));
        var firstGroup = Texts[..2].SelectMany(t => Ids(t).Append(ImEnd)).ToArray();
        var secondGroup = Ids(Texts[2]).Append(ImEnd).ToArray();
        const int block = 8;

        var data = Load(block, packing: true, batchSize: 2);

        var expected = firstGroup.Chunk(block).Where(c => c.Length == block)
            .Concat(secondGroup.Chunk(block).Where(c => c.Length == block)).ToList();
        Assert.Equal(expected.Count, data.Train.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], data.Train[i].InputIds);
    }

    [Fact]
    public void WithoutPackingEachTextIsCutToCutoffLen()
    {
        TextDataset(string.Join("\n", Texts));

        var data = Load(8, packing: false);

        Assert.Equal(3, data.Train.Count);
        for (int i = 0; i < 3; i++)
        {
            var full = Ids(Texts[i]).Append(ImEnd).ToArray();
            Assert.True(full.Length > 8);
            Assert.Equal(full[..8], data.Train[i].InputIds);
            Assert.Equal(full[..8], data.Train[i].Labels);
        }
        var shortData = Load(1000, packing: false);
        Assert.Equal(ImEnd, shortData.Train[0].InputIds[^1]);
    }

    [Fact]
    public void ThePadTokenCarriesNoLabel()
    {
        TextDataset("first part<|endoftext|>second part");

        var example = Assert.Single(Load(1000, packing: false).Train);

        int at = Array.IndexOf(example.InputIds, EndOfText);
        Assert.True(at > 0);
        Assert.Equal(SupervisedCollator.IgnoreIndex, example.Labels[at]);
        Assert.Equal(example.InputIds.Where((_, i) => i != at), example.Labels.Where((_, i) => i != at));
        Assert.Equal(ImEnd, example.Labels[^1]);
    }

    [Fact]
    public void ABosTokenStartsEveryBlockOrIsPrependedToEveryText()
    {
        using var tokenizerCopy = new DataDir();
        foreach (string file in Directory.GetFiles(TokenizerDir))
            File.Copy(file, Path.Combine(tokenizerCopy.Path, Path.GetFileName(file)));
        string configPath = Path.Combine(tokenizerCopy.Path, "tokenizer_config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!;
        config["add_bos_token"] = true;
        config["bos_token"] = "<|im_start|>";
        File.WriteAllText(configPath, config.ToJsonString());
        TextDataset(string.Join("\n", Texts));

        var packed = Load(8, packing: true, tokenizerDir: tokenizerCopy.Path);
        var stream = Texts.SelectMany(t => Ids(t).Append(ImEnd)).ToArray();
        Assert.Equal(stream.Length / 8, packed.Train.Count);
        Assert.All(packed.Train, b => Assert.Equal(ImStart, b.InputIds[0]));
        Assert.Equal(stream[1..8], packed.Train[0].InputIds[1..]);

        var single = Load(1000, packing: false, tokenizerDir: tokenizerCopy.Path);
        Assert.Equal(Ids(Texts[0]).Prepend(ImStart).Append(ImEnd), single.Train[0].InputIds);
    }

    [Fact]
    public void TextFilesSplitAsPythonsSplitlinesWithEmptyLinesKept()
    {
        TextDataset("alpha\r\nbeta\rgamma\n\ndelta\u2028epsilon\n");

        var data = Load(1000, packing: false);

        var expected = new[] { "alpha", "beta", "gamma", "", "delta", "epsilon" }.Select(t => Ids(t).Append(ImEnd).ToArray()).ToList();
        Assert.Equal(expected.Count, data.Train.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], data.Train[i].InputIds);
    }

    [Fact]
    public void AlpacaRecordsGivePromptAndQueryJoinedAndNeedNoResponse()
    {
        dir.Info("""{"c4": {"file_name": "c4.jsonl", "columns": {"prompt": "text"}}, "qa": {"file_name": "qa.json"}}""")
            .Write("c4.jsonl", "{\"text\": \"one document\"}\n{\"text\": \"another document\"}\n")
            .Write("qa.json", """[{"instruction": "Explain", "input": "gravity", "output": "It pulls."}]""");

        var args = new DataArguments { Dataset = ["c4", "qa"], DatasetDir = dir.Path, CutoffLen = 1000, Packing = false };
        var data = PretrainDatasets.Load(args, Qwen, ChatTemplates.Get("qwen"), TokenizerDir, seed: 1);

        Assert.Equal(
            new[] { "one document", "another document", "Explain\ngravity" }.Select(t => Ids(t).Append(ImEnd).ToArray()),
            data.Train.Select(e => e.InputIds));
    }

    [Fact]
    public void TooLittleTextForOneBlockIsAnErrorThatSaysSo()
    {
        TextDataset("short");
        var e = Assert.Throws<InvalidDataException>(() => Load(64, packing: true));
        Assert.Contains("not enough text for one block of cutoff_len 64", e.Message);
    }

    [Fact]
    public void SupervisedFineTuningRefusesATextCorpus()
    {
        TextDataset("some text");
        var e = Assert.Throws<InvalidDataException>(() => SupervisedDatasets.Load(
            new DataArguments { Dataset = ["wiki"], DatasetDir = dir.Path, CutoffLen = 64 }, Qwen, ChatTemplates.Get("qwen"), seed: 1));
        Assert.EndsWith("dataset 'wiki': columns does not name the 'response' column, so the records have no answers to train on (a plain-text corpus trains with stage: pt)", e.Message);
    }
}
