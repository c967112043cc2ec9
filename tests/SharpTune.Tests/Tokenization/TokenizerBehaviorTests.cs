using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

public class TokenizerBehaviorTests
{
    private static readonly string[] ParityTexts =
    [
        "Hello, world! It's a test of merges.",
        "你好，世界！ 中文和English混合 123",
        "def f(x):\n    return x ** 2  # comment\r\n",
        "emoji 👩‍❤️‍💋‍👨 and 𠀀𠀁 and 𝕳𝖊𝖑𝖑𝖔",
        "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    ];

    [Fact]
    public void MergesAsArraysEncodeLikeMergesAsStrings()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            JsonNode root = JsonNode.Parse(File.ReadAllText(TestPaths.Fixtures("tokenizers", "qwen2.5-instruct", "tokenizer.json")))!;
            JsonArray merges = root["model"]!["merges"]!.AsArray();
            Assert.Equal(JsonValueKind.String, merges[0]!.GetValueKind());
            var asArrays = new JsonArray(merges.Select(m =>
            {
                string[] parts = m!.GetValue<string>().Split(' ');
                return (JsonNode)new JsonArray(parts[0], parts[1]);
            }).ToArray());
            root["model"]!["merges"] = asArrays;
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());

            Tokenizer fromStrings = TokenizerFixtureTests.Load("qwen2.5-instruct");
            Tokenizer fromArrays = Tokenizer.FromDirectory(dir);
            foreach (string text in ParityTexts)
                Assert.Equal(fromStrings.Encode(text), fromArrays.Encode(text));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void MissingTokenizerJsonNamesThePath()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-no-tokenizer-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<FileNotFoundException>(() => Tokenizer.FromDirectory(dir));
        Assert.Contains(Path.Combine(dir, "tokenizer.json"), error.Message);
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []", "tokenizer.json: not valid JSON")]
    [InlineData("{\"decoder\": {\"type\": \"ByteLevel\"}}", "tokenizer.json: the file has no \"model\"")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "tokenizer.json: model has no \"vocab\"")]
    public void MalformedTokenizerJsonIsOneLineNamingTheFileOrField(string json, string expected)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-bad-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json);
            var error = Assert.Throws<InvalidDataException>(() => Tokenizer.FromDirectory(dir));
            Assert.Contains(expected, error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void VocabularyQueriesCoverAddedTokens()
    {
        Tokenizer qwen3 = TokenizerFixtureTests.Load("qwen3");
        Assert.Equal(151669, qwen3.VocabSize);
        Assert.Equal(151644, qwen3.TokenToId("<|im_start|>"));
        Assert.Equal("</think>", qwen3.IdToToken(151668));
        Assert.True(qwen3.IsSpecial(151645));
        Assert.False(qwen3.IsSpecial(151667));
        Assert.False(qwen3.IsSpecial(9707));
        Assert.Null(qwen3.IdToToken(qwen3.VocabSize));
        Assert.Null(qwen3.TokenToId("not a token at all"));
        Assert.Equal(14, qwen3.SpecialTokens.Count);
        Assert.Equal("<|endoftext|>", qwen3.SpecialTokens[0]);
    }

    [Fact]
    public void SpecialTokensMatchBeforeNormalisationAndBpe()
    {
        Tokenizer qwen = TokenizerFixtureTests.Load("qwen2.5-instruct");
        int[] ids = qwen.Encode("a<|im_end|><|im_end|>b");
        Assert.Equal([qwen.Encode("a")[0], 151645, 151645, qwen.Encode("b")[0]], ids);
        Assert.Equal("ab", qwen.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void QwenRegexTreatsAstralCodePointsAsSingleCharacters()
    {
        var regex = new CodePointRegex(QwenPattern, "test");
        var matches = new List<(int Start, int Length)>();
        // Mathematical fraktur letters are \p{L} and the emoji is \p{So}, each one surrogate pair in UTF-16.
        regex.FindMatches("a 𝕳𝖊x1😀", matches);
        Assert.Equal([(0, 1), (1, 6), (7, 1), (8, 2)], matches);
    }

    [Fact]
    public void CaseInsensitiveContractionMatchesLongS()
    {
        // Oniguruma folds U+017F to 's', so "'ſ" is the contraction alternative, not punctuation followed by a letter.
        var regex = new CodePointRegex(@"(?i:'s|'t)|\p{L}+|[^\p{L}]+", "test");
        var matches = new List<(int Start, int Length)>();
        regex.FindMatches("it'ſ", matches);
        Assert.Equal([(0, 2), (2, 2)], matches);
    }

    [Theory]
    [InlineData(@"[^\r\n\p{L}\p{N}]?+\p{L}+", @"(?>[^\r\n\p{L}\p{N}]?)\p{L}+")]
    [InlineData(@"\p{^N}\h", @"\P{N}[0-9a-fA-F]")]
    [InlineData(@"^(?m:.)$", @"(?m:^)(?s:.)(?m:$)")]
    [InlineData(@"(?i)[a-z]x", "(?i)[a-z\u017F]x")]
    public void OnigurumaConstructsAreTranslated(string oniguruma, string dotNet)
    {
        Assert.Equal(dotNet, OnigurumaPattern.ToDotNet(oniguruma));
    }

    [Theory]
    [InlineData(@"\p{Han}+")]
    [InlineData(@"[a-z&&[^aeiou]]")]
    [InlineData(@"\R")]
    public void UntranslatablePatternsAreRejected(string oniguruma)
    {
        Assert.Throws<NotSupportedException>(() => OnigurumaPattern.ToDotNet(oniguruma));
    }

    [Fact]
    public void LoneSurrogatesEncodeAsReplacementCharacter()
    {
        Tokenizer qwen = TokenizerFixtureTests.Load("qwen2.5-instruct");
        Assert.Equal(qwen.Encode("a\uFFFDb"), qwen.Encode("a\uD800b"));
        Assert.Equal(qwen.Encode("\uFFFD"), qwen.Encode("\uDC00"));
    }

    [Fact]
    public void DecodeReplacesInvalidUtf8LikeFromUtf8Lossy()
    {
        Tokenizer qwen = TokenizerFixtureTests.Load("qwen2.5-instruct");
        // "你" is E4 BD A0; E4 BD without its last byte is one maximal invalid subpart, hence one U+FFFD.
        int lead = ByteToken(qwen, 0xE4), middle = ByteToken(qwen, 0xBD), last = ByteToken(qwen, 0xA0);
        Assert.Equal("你", qwen.Decode([lead, middle, last]));
        Assert.Equal("\uFFFDa", qwen.Decode([lead, middle, qwen.Encode("a")[0]]));
        Assert.Equal("\uFFFD\uFFFD", qwen.Decode([last, last]));
        Assert.Equal("\uFFFD<|im_end|>", qwen.Decode([lead, 151645]));
        Assert.Equal("\uFFFD", qwen.Decode([lead, 151645], skipSpecialTokens: true));
    }

    [Fact]
    public void StreamingDecoderHoldsBackIncompleteCharacters()
    {
        Tokenizer qwen = TokenizerFixtureTests.Load("qwen2.5-instruct");
        int lead = ByteToken(qwen, 0xE4), middle = ByteToken(qwen, 0xBD), last = ByteToken(qwen, 0xA0);
        var decoder = new StreamingDecoder(qwen, skipSpecialTokens: true);
        Assert.Equal("", decoder.Push(lead));
        Assert.Equal("", decoder.Push(middle));
        Assert.Equal("你", decoder.Push(last));
        Assert.Equal("", decoder.Push(151645));
        Assert.Equal("", decoder.Push(lead));
        Assert.Equal("\uFFFD", decoder.Flush());

        int[] ids = [lead, middle, 151645, last, lead, qwen.Encode("x")[0], middle, last, lead];
        foreach (bool skip in new[] { false, true })
        {
            var stream = new StreamingDecoder(qwen, skip);
            var text = new StringBuilder();
            foreach (int id in ids)
                text.Append(stream.Push(id));
            text.Append(stream.Flush());
            Assert.Equal(qwen.Decode(ids, skip), text.ToString());
        }
    }

    private const string QwenPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static int ByteToken(Tokenizer tokenizer, byte value) =>
        tokenizer.TokenToId(ByteLevelAlphabet.ByteToChar(value).ToString())!.Value;
}
