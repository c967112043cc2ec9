using System.Text;
using System.Text.Json;
using SharpTune.Tests.IO;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// The GLM tokenizers behind <see cref="Tokenizer.FromDirectory"/>: ChatGLM3's SentencePiece model with its special
/// tokens after the vocabulary, GLM-4's tiktoken rank file, and tokenizer.model files that are neither.
/// </summary>
public sealed class GlmTokenizerTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Folder(string name, byte[] tokenizerModel, string? tokenizerConfig = null)
    {
        string folder = _dir.File(name);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), tokenizerModel);
        if (tokenizerConfig is not null)
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), tokenizerConfig);
        return folder;
    }

    private static byte[] UnigramModel => File.ReadAllBytes(TestPaths.Fixtures("sentencepiece", "uni.model"));

    [Fact]
    public void ChatGlm3SpecialTokensFollowTheSentencePieceVocabularyAndDecodeBetweenSegments()
    {
        var chatGlm = Tokenizer.FromDirectory(Folder("chatglm3", UnigramModel, """{"tokenizer_class": "ChatGLMTokenizer"}"""));
        var plain = Tokenizer.FromDirectory(Folder("plain", UnigramModel));
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixtures("sentencepiece", "cases.json")));
        var reference = doc.RootElement.GetProperty("cases").EnumerateArray()
            .First(c => c.GetProperty("model").GetString() == "uni.model" && c.GetProperty("text").GetString()!.Length > 3);
        int[] referenceIds = reference.GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        string referenceDecoded = reference.GetProperty("decoded").GetString()!;

        int n = plain.VocabSize;
        Assert.Equal(n + 9, chatGlm.VocabSize);
        string[] specials = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"];
        for (int i = 0; i < specials.Length; i++)
        {
            Assert.Equal(n + i, chatGlm.TokenToId(specials[i]));
            Assert.Equal(specials[i], chatGlm.IdToToken(n + i));
            Assert.True(chatGlm.IsSpecial(n + i));
        }
        Assert.Null(plain.TokenToId("<|user|>"));

        // As SPTokenizer with encode_special_tokens=False: text is encoded by SentencePiece alone.
        Assert.Equal(referenceIds, chatGlm.Encode(reference.GetProperty("text").GetString()!));
        Assert.Equal(plain.Encode("<|user|> sop"), chatGlm.Encode("<|user|> sop"));

        // SPTokenizer.decode: the pieces between special tokens are decoded on their own.
        int[] ids = [n + 1, n + 3, n + 6, .. referenceIds, n + 8, .. referenceIds];
        Assert.Equal("[gMASK]sop<|user|>" + referenceDecoded + "<|observation|>" + referenceDecoded, chatGlm.Decode(ids));
        Assert.Equal(referenceDecoded + referenceDecoded, chatGlm.Decode(ids, skipSpecialTokens: true));
    }

    /// <summary>
    /// A rank file of the 256 single bytes and five merges: "he" 256, "ll" 257, "hell" 258, " w" 259, "or" 260,
    /// " wor" 261. tiktoken merges the lowest-ranked adjacent pair first, so "hello" → hell + o and " world" →
    /// " wor" + l + d; GLM-4's special tokens take the ids from 262 on.
    /// </summary>
    internal static byte[] SmallRankFile()
    {
        var lines = new StringBuilder();
        for (int b = 0; b < 256; b++)
            lines.Append(Convert.ToBase64String([(byte)b])).Append(' ').Append(b).Append('\n');
        string[] merges = ["he", "ll", "hell", " w", "or", " wor"];
        for (int i = 0; i < merges.Length; i++)
            lines.Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(merges[i]))).Append(' ').Append(256 + i).Append('\n');
        return Encoding.ASCII.GetBytes(lines.ToString());
    }

    [Fact]
    public void Glm4TiktokenFileEncodesByRankAndRoundTripsWithSpecialTokens()
    {
        var tokenizer = Tokenizer.FromDirectory(Folder("glm4", SmallRankFile()));

        Assert.Equal(262 + 14, tokenizer.VocabSize);
        Assert.Equal(262, tokenizer.TokenToId("<|endoftext|>"));
        Assert.Equal(264, tokenizer.TokenToId("[gMASK]"));
        Assert.Equal(266, tokenizer.TokenToId("<sop>"));
        Assert.Equal(269, tokenizer.TokenToId("<|user|>"));
        Assert.Equal(275, tokenizer.TokenToId("<|end_of_video|>"));
        Assert.Equal(258, tokenizer.TokenToId("hell"));

        string text = "[gMASK]<sop><|user|>\nhello world";
        int[] ids = tokenizer.Encode(text);
        Assert.Equal([264, 266, 269, '\n', 258, 'o', 261, 'l', 'd'], ids);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal("\nhello world", tokenizer.Decode(ids, skipSpecialTokens: true));

        // The pattern keeps numbers in runs of three and splits contractions; other scripts fall back to bytes.
        Assert.Equal([.. "123"u8.ToArray().Select(b => (int)b), .. "45"u8.ToArray().Select(b => (int)b), '\'', 's'],
            tokenizer.Encode("12345's"));
        int[] chinese = tokenizer.Encode("你好😀");
        Assert.Equal(Encoding.UTF8.GetBytes("你好😀").Select(b => (int)b), chinese);
        Assert.Equal("你好😀", tokenizer.Decode(chinese));
        Assert.Equal("\uFFFD", tokenizer.Decode([0xE4, 0xBD]));
    }

    [Fact]
    public void ATokenizerModelThatIsNeitherFormatIsRefusedNamingTheFile()
    {
        string folder = Folder("neither", Encoding.UTF8.GetBytes("not a tokenizer\n"));
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromDirectory(folder));
        Assert.Contains(Path.Combine(folder, "tokenizer.model"), e.Message);
        Assert.Contains("neither a SentencePiece model", e.Message);
    }

    [Fact]
    public void ATruncatedSentencePieceModelIsRefusedNamingTheFieldAndTheFile()
    {
        string folder = Folder("truncated", UnigramModel[..1000]);
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromDirectory(folder));
        Assert.Contains(Path.Combine(folder, "tokenizer.model"), e.Message);
        Assert.Contains("ModelProto.pieces[", e.Message);
    }

    [Fact]
    public void ABadRankLineIsRefusedNamingTheLineAndTheFile()
    {
        string folder = Folder("badrank", Encoding.ASCII.GetBytes("YQ== 0\nYg== 1\n!!! 2\n"));
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromDirectory(folder));
        Assert.Contains(Path.Combine(folder, "tokenizer.model"), e.Message);
        Assert.Contains("line 3", e.Message);
    }
}
