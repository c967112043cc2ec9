using System.Buffers;
using System.Text.Json;

namespace SharpTune.Tokenization;

/// <summary>
/// A model's tokenizer, whichever file it comes from: Hugging Face's <c>tokenizer.json</c> (byte-level BPE,
/// <see cref="HuggingFaceTokenizer"/>), a SentencePiece <c>tokenizer.model</c> (<see cref="SentencePieceTokenizer"/>,
/// with ChatGLM3's special tokens when tokenizer_config.json names ChatGLMTokenizer) or GLM-4's tiktoken-style
/// <c>tokenizer.model</c> (<see cref="TiktokenTokenizer"/>). Templates, data processing, chat and serving see only
/// this class. Thread-safe.
/// </summary>
public sealed class Tokenizer
{
    private const string TokenizerJsonFileName = "tokenizer.json";
    private const string TokenizerModelFileName = "tokenizer.model";

    /// <summary>The highest token id accepted: the largest vocabularies in use hold about 260,000 tokens.</summary>
    public const int MaxTokenId = (1 << 22) - 1;

    private readonly ITokenizerModel _model;

    private Tokenizer(ITokenizerModel model) => _model = model;

    /// <summary>Highest token id + 1, counting added tokens.</summary>
    public int VocabSize => _model.VocabSize;

    /// <summary>The special tokens' contents by ascending id (tokenizer.json's special added tokens; SentencePiece's
    /// control pieces and appended tokens; GLM-4's special tokens).</summary>
    public IReadOnlyList<string> SpecialTokens => _model.SpecialTokens;

    /// <summary>Reads a <c>tokenizer.json</c>.</summary>
    /// <exception cref="InvalidDataException">The file is not valid UTF-8 or JSON, or a field is missing or wrong: "PATH: field: problem".</exception>
    /// <exception cref="NotSupportedException">The file asks for a model, stage or regex construct SharpTune does not implement: "PATH: what".</exception>
    public static Tokenizer FromFile(string tokenizerJsonPath) => new(HuggingFaceTokenizer.FromFile(tokenizerJsonPath));

    /// <summary>
    /// Loads <c>dir/tokenizer.json</c>, or without one <c>dir/tokenizer.model</c>: a SentencePiece model (a protobuf
    /// ModelProto) or a tiktoken rank file (text lines "BASE64 RANK"), told apart by content.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder has neither file.</exception>
    /// <exception cref="InvalidDataException">The file is neither format or is malformed: "PATH: field: problem".</exception>
    public static Tokenizer FromDirectory(string dir)
    {
        string json = Path.Combine(dir, TokenizerJsonFileName);
        string model = Path.Combine(dir, TokenizerModelFileName);
        if (File.Exists(json) || !File.Exists(model))
            return FromFile(json);
        byte[] bytes = File.ReadAllBytes(model);
        try
        {
            if (SentencePieceModelProto.LooksLikeModelProto(bytes))
                return new Tokenizer(new SentencePieceTokenizer(SentencePieceModelProto.Parse(bytes),
                    IsChatGlmTokenizer(dir) ? SentencePieceTokenizer.ChatGlm3SpecialTokens : []));
            if (TiktokenTokenizer.LooksLikeRankFile(bytes))
                return new Tokenizer(TiktokenTokenizer.FromBytes(bytes, model));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{model}: {e.Message}", e);
        }
        catch (NotSupportedException e)
        {
            throw new NotSupportedException($"{model}: {e.Message}", e);
        }
        throw new InvalidDataException($"{model}: neither a SentencePiece model (protobuf ModelProto) nor a tiktoken " +
            "rank file (lines 'BASE64TOKEN RANK')");
    }

    /// <summary>ChatGLM3's folders name its tokenizer class; its SentencePiece model then has its special tokens appended.</summary>
    private static bool IsChatGlmTokenizer(string dir)
    {
        string path = TokenizerConfig.Path(dir);
        if (!File.Exists(path))
            return false;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            return document.RootElement.ValueKind == JsonValueKind.Object &&
                   document.RootElement.TryGetProperty("tokenizer_class", out var name) &&
                   name.ValueKind == JsonValueKind.String && name.GetString() == "ChatGLMTokenizer";
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>
    /// Token ids of <paramref name="text"/> without adding any special tokens (no bos/eos); special tokens written in
    /// the text are still recognised.
    /// </summary>
    public int[] Encode(string text)
    {
        var ids = new List<int>();
        _model.Encode(ReplaceLoneSurrogates(text), ids);
        return ids.ToArray();
    }

    /// <summary>Text of <paramref name="ids"/> as the tokenizer's own library decodes it. Unknown ids are skipped.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false) => _model.Decode(ids, skipSpecialTokens);

    public int? TokenToId(string token) => _model.TokenToId(token);

    public string? IdToToken(int id) => _model.IdToToken(id);

    /// <summary>True for special tokens (see <see cref="SpecialTokens"/>).</summary>
    public bool IsSpecial(int id) => _model.IsSpecial(id);

    /// <summary>
    /// Appends the bytes a token contributes when it continues a text: streaming decode and token constraints read
    /// tokens one at a time through this.
    /// </summary>
    internal void AppendTokenBytes(int id, bool skipSpecialTokens, IBufferWriter<byte> output) =>
        _model.AppendTokenBytes(id, skipSpecialTokens, output);

    /// <summary>
    /// HF receives text as valid UTF-8, where a lone surrogate cannot exist; callers crossing that boundary
    /// (Python, JavaScript) turn it into U+FFFD, so the same happens here.
    /// </summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0)
            return text;
        char[]? repaired = null;
        for (int i = first; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                i++;
            else if (char.IsSurrogate(text[i]))
                (repaired ??= text.ToCharArray())[i] = '\uFFFD';
        }
        return repaired is null ? text : new string(repaired);
    }
}
