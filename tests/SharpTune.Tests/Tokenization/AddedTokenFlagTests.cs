using System.Text.Json.Nodes;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>The added-token flags on a small synthetic byte-level tokenizer (the Qwen files set none of them).</summary>
public sealed class AddedTokenFlagTests : IDisposable
{
    private const int SingleWordId = 300, LeftStripId = 301, RightStripId = 302, NormalizedId = 303;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sharptune-added-" + Guid.NewGuid().ToString("N"));
    private readonly Tokenizer _tokenizer;

    public AddedTokenFlagTests()
    {
        var vocab = new JsonObject();
        for (int value = 0; value < 256; value++)
            vocab[ByteLevelAlphabet.ByteToChar((byte)value).ToString()] = value;
        var root = new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                Added(SingleWordId, "[X]", singleWord: true),
                Added(LeftStripId, "<L>", lstrip: true),
                Added(RightStripId, "<R>", rstrip: true),
                Added(NormalizedId, "\u00e9", normalized: true)),
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), root.ToJsonString());
        _tokenizer = Tokenizer.FromDirectory(_dir);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SingleWordTokenOnlyMatchesBetweenNonWordCharacters()
    {
        Assert.DoesNotContain(SingleWordId, _tokenizer.Encode("a[X]b"));
        // Model ids equal byte values in this vocabulary.
        Assert.Equal(['a', ' ', SingleWordId, ' ', 'b'], _tokenizer.Encode("a [X] b"));
        Assert.Equal([SingleWordId], _tokenizer.Encode("[X]"));
    }

    [Fact]
    public void LeftStripSwallowsPrecedingWhitespace()
    {
        Assert.Equal(['a', LeftStripId], _tokenizer.Encode("a  \t<L>"));
        Assert.Equal("a<L>", _tokenizer.Decode(_tokenizer.Encode("a  \t<L>")));
    }

    [Fact]
    public void RightStripSwallowsFollowingWhitespace()
    {
        Assert.Equal([RightStripId, 'b'], _tokenizer.Encode("<R> \n b"));
    }

    [Fact]
    public void NormalizedTokenMatchesNormalisedText()
    {
        Assert.Equal([NormalizedId], _tokenizer.Encode("e\u0301"));
        Assert.Equal(['x', NormalizedId, 'y'], _tokenizer.Encode("xe\u0301y"));
    }

    private static JsonObject Added(int id, string content, bool singleWord = false, bool lstrip = false,
        bool rstrip = false, bool normalized = false) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = singleWord,
        ["lstrip"] = lstrip,
        ["rstrip"] = rstrip,
        ["normalized"] = normalized,
        ["special"] = false,
    };
}
