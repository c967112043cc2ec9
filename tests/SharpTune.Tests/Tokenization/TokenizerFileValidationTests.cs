using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Tests.IO;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// Crafted or broken tokenizer.json files (from a fault-and-abuse run): each is refused with one line naming the file
/// and the field, and no pattern can make encoding hang.
/// </summary>
public sealed class TokenizerFileValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string TokenizerPath => _dir.File("tokenizer.json");

    /// <summary>
    /// A small byte-level BPE tokenizer: the letters a, b and '!' with one merge, a Split stage with
    /// <paramref name="splitRegex"/>, then ByteLevel without its own regex, and one added special token.
    /// </summary>
    private static JsonObject SmallTokenizer(string splitRegex = @"\s+") => new()
    {
        ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 4, ["content"] = "<|end|>", ["special"] = true }),
        ["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = splitRegex }, ["behavior"] = "Isolated" },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = false }),
        },
        ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
        ["model"] = new JsonObject
        {
            ["type"] = "BPE",
            ["vocab"] = new JsonObject { ["a"] = 0, ["b"] = 1, ["!"] = 2, ["ab"] = 3 },
            ["merges"] = new JsonArray("a b"),
        },
    };

    private Tokenizer Load(JsonObject json)
    {
        File.WriteAllText(TokenizerPath, json.ToJsonString());
        return Tokenizer.FromFile(TokenizerPath);
    }

    private string LoadError(JsonObject json)
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(json));
        Assert.StartsWith(TokenizerPath + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public async Task NestedQuantifierPatternEncodesInLinearTime()
    {
        // (a+)+$ on a run of a's that then fails to match backtracks exponentially in a backtracking engine (> 60 s
        // for 32 a's); it has no construct that needs backtracking, so it runs on the non-backtracking engine.
        Tokenizer tokenizer = Load(SmallTokenizer("(a+)+$"));
        string text = new string('a', 32) + "!";
        // WaitAsync throws TimeoutException if encoding hangs as it did on the backtracking engine.
        int[] ids = await Task.Run(() => tokenizer.Encode(text)).WaitAsync(TimeSpan.FromSeconds(20));
        // No match: the text stays one word, merged as a·b pairs cannot form, so each a is a token and '!' one more.
        Assert.Equal([.. Enumerable.Repeat(0, 32), 2], ids);
    }

    [Fact]
    public void NonBacktrackingPatternSplitsLikeTheBacktrackingEngine()
    {
        // Same pattern, text where it matches at the end of a line: (?m:$) and the capture group both work.
        Tokenizer tokenizer = Load(SmallTokenizer("(a+)+$"));
        Assert.Equal([2, 0, 0, 2, 0], tokenizer.Encode("!aa!a"));
        Assert.Equal("!aa!a", tokenizer.Decode(tokenizer.Encode("!aa!a")));
    }

    [Fact]
    public void NonBacktrackingEngineFindsTheBacktrackingEnginesMatches()
    {
        // Qwen's pattern without its lookahead alternative and possessive quantifier, so it runs without backtracking;
        // on the alpaca demo texts (English and Chinese) every match must equal the backtracking engine's.
        const string pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+";
        var codePointRegex = new CodePointRegex(pattern, "test");
        var backtracking = new System.Text.RegularExpressions.Regex(OnigurumaPattern.ToDotNet(pattern),
            System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        var matches = new List<(int Start, int Length)>();
        int compared = 0;
        foreach (string file in new[] { "alpaca_en_demo.json", "alpaca_zh_demo.json" })
        {
            // Astral characters go through CodePointRegex's projection (tested elsewhere), so they are left out here.
            string text = new(File.ReadAllText(TestPaths.Fixtures("llamafactory", file)).Where(c => !char.IsSurrogate(c)).ToArray());
            matches.Clear();
            codePointRegex.FindMatches(text, matches);
            Assert.Equal(backtracking.Matches(text).Select(m => (m.Index, m.Length)), matches);
            compared += matches.Count;
        }
        Assert.True(compared > 100_000);
    }

    [Fact]
    public async Task CatastrophicBacktrackingPatternTimesOutNamingTheFileAndPattern()
    {
        // The lookahead keeps this pattern on the backtracking engine; the match timeout stops it (WaitAsync throws
        // TimeoutException, failing the test, if it does not).
        const string pattern = "(a+)+(?=b)";
        Tokenizer tokenizer = Load(SmallTokenizer(pattern));
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            Task.Run(() => tokenizer.Encode(new string('a', 40) + "!")).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.StartsWith(TokenizerPath + ": ", e.Message);
        Assert.Contains($"'{pattern}'", e.Message);
        Assert.Contains("pre_tokenizer", e.Message);
    }

    [Fact]
    public void VocabAsAListNamesTheField() =>
        Assert.Contains("model.vocab must be an object of token: id, got a list",
            LoadError(With(SmallTokenizer(), t => t["model"]!["vocab"] = new JsonArray("a", "b"))));

    [Fact]
    public void NegativeVocabIdNamesTheToken() =>
        Assert.Contains("model.vocab: token 'b' has id '-1'; ids are integers from 0",
            LoadError(With(SmallTokenizer(), t => t["model"]!["vocab"]!["b"] = -1)));

    [Fact]
    public void VocabIdThatIsNotAnIntegerNamesTheToken() =>
        Assert.Contains("model.vocab: token 'b' has id '\"x\"'",
            LoadError(With(SmallTokenizer(), t => t["model"]!["vocab"]!["b"] = "x")));

    [Fact]
    public void NullAddedTokenContentNamesTheEntry() =>
        Assert.Contains("added_tokens[0]: \"content\" must be a string, got null",
            LoadError(With(SmallTokenizer(), t => t["added_tokens"]![0]!["content"] = null)));

    [Fact]
    public void AddedTokenIdBeyondTheVocabularyIsRefused()
    {
        // Five tokens in all (ids 0-4); an id of a billion would size every per-id table by it.
        string message = LoadError(With(SmallTokenizer(), t => t["added_tokens"]![0]!["id"] = 1_000_000_000));
        Assert.Contains("added_tokens[0]: id 1000000000 ('<|end|>') is beyond the vocabulary", message);
    }

    [Fact]
    public void InvalidUtf8IsRefusedWithItsPosition()
    {
        byte[] good = Encoding.UTF8.GetBytes(SmallTokenizer().ToJsonString());
        int at = Array.IndexOf(good, (byte)'!');
        byte[] bad = [.. good[..at], 0xFF, .. good[(at + 1)..]];
        File.WriteAllBytes(TokenizerPath, bad);
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromFile(TokenizerPath));
        Assert.Equal($"{TokenizerPath}: invalid UTF-8 at line 1, byte {at + 1}", e.Message);
    }

    [Fact]
    public void FieldErrorsNameTheFilePath() =>
        Assert.EndsWith("model has no \"merges\"", LoadError(With(SmallTokenizer(), t => t["model"]!.AsObject().Remove("merges"))));

    private static JsonObject With(JsonObject json, Action<JsonObject> edit)
    {
        edit(json);
        return json;
    }

    [Fact]
    public void TokenizerWithAByteOrderMarkLoads()
    {
        File.WriteAllBytes(TokenizerPath, [.. "\uFEFF"u8, .. Encoding.UTF8.GetBytes(SmallTokenizer().ToJsonString())]);
        Assert.Equal([3, 2], Tokenizer.FromFile(TokenizerPath).Encode("ab!"));
    }

    [Fact]
    public void UnsupportedPartsNameTheFilePath()
    {
        File.WriteAllText(TokenizerPath, With(SmallTokenizer(), t => t["pre_tokenizer"]!["pretokenizers"]![0]!["type"] = "Whitespace").ToJsonString());
        var e = Assert.Throws<NotSupportedException>(() => Tokenizer.FromFile(TokenizerPath));
        Assert.Equal($"{TokenizerPath}: tokenizer.json pre_tokenizer type 'Whitespace' is not supported.", e.Message);
    }
}
