using System.Buffers;
using System.Text;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> byte-level BPE tokenizer (GPT-2 / Qwen family), reproducing the Rust
/// <c>tokenizers</c> library: added tokens are split out of the raw text, the rest is normalised, pre-tokenised,
/// byte-level mapped and BPE-merged. Thread-safe; encoding reuses per-thread buffers.
/// </summary>
/// <remarks>
/// The post_processor, truncation and padding sections are not applied: <see cref="Encode"/> has
/// <c>add_special_tokens=false</c> semantics, and truncation and padding are batching concerns of the caller.
/// </remarks>
internal sealed class HuggingFaceTokenizer : ITokenizerModel
{
    private readonly BytePairModel _model;
    private readonly Normalizer? _normalizer;
    private readonly IReadOnlyList<PreTokenizer> _preTokenizerStages;
    private readonly AddedTokenMatcher _rawTextMatcher;
    private readonly AddedTokenMatcher _normalizedTextMatcher;
    private readonly Dictionary<string, int> _addedTokenIds = new(StringComparer.Ordinal);
    private readonly string?[] _addedTokenContents;
    private readonly bool[] _isSpecial;
    private readonly string?[] _modelTokens;

    [ThreadStatic]
    private static EncodeScratch? t_scratch;

    private HuggingFaceTokenizer(JsonElement root, string path)
    {
        _model = BytePairModel.FromJson(TokenizerJson.Required(root, "model", "the file"));
        _normalizer = root.TryGetProperty("normalizer", out var normalizer) ? Normalizer.FromJson(normalizer) : null;
        _preTokenizerStages = PreTokenizer.ReadStages(
            root.TryGetProperty("pre_tokenizer", out var preTokenizer) ? preTokenizer : default, path);
        RequireByteLevelDecoder(root);

        var addedTokens = root.TryGetProperty("added_tokens", out _)
            ? TokenizerJson.RequiredArray(root, "added_tokens", "the file").EnumerateArray()
                .Select((entry, i) => AddedToken.FromJson(entry, $"added_tokens[{i}]")).ToList()
            : [];
        // Ids index per-token tables, so an absurd id would size them by itself; HF allows gaps between ids, so the
        // bound is generous rather than the number of tokens.
        for (int i = 0; i < addedTokens.Count; i++)
        {
            if (addedTokens[i].Id is < 0 or > Tokenizer.MaxTokenId)
                throw new InvalidDataException($"added_tokens[{i}]: id {addedTokens[i].Id} ({MessageText.Quote(addedTokens[i].Content)}) " +
                    $"is beyond the vocabulary: ids run from 0 to {Tokenizer.MaxTokenId}");
        }
        if (_model.Vocab.FirstOrDefault(entry => entry.Value > Tokenizer.MaxTokenId) is { Key: not null } outOfRange)
            throw new InvalidDataException($"model.vocab: token {MessageText.Quote(outOfRange.Key)} has id {outOfRange.Value}, " +
                $"beyond the vocabulary: ids run from 0 to {Tokenizer.MaxTokenId}");

        int highestId = Math.Max(_model.Vocab.Count == 0 ? -1 : _model.Vocab.Values.Max(),
            addedTokens.Count == 0 ? -1 : addedTokens.Max(t => t.Id));
        VocabSize = highestId + 1;
        _modelTokens = new string?[VocabSize];
        foreach (var (token, id) in _model.Vocab)
            _modelTokens[id] = token;
        _addedTokenContents = new string?[VocabSize];
        _isSpecial = new bool[VocabSize];
        foreach (AddedToken token in addedTokens)
        {
            _addedTokenIds[token.Content] = token.Id;
            _addedTokenContents[token.Id] = token.Content;
            _isSpecial[token.Id] = token.Special;
        }
        SpecialTokens = addedTokens.Where(t => t.Special).OrderBy(t => t.Id).Select(t => t.Content).ToArray();

        // HF tries special tokens before other added tokens; the order only matters between equal contents.
        var matchOrder = addedTokens.Where(t => t.Special).Concat(addedTokens.Where(t => !t.Special)).ToList();
        _rawTextMatcher = new AddedTokenMatcher(matchOrder.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedTextMatcher = new AddedTokenMatcher(matchOrder.Where(t => t.Normalized)
            .Select(t => (_normalizer?.Normalize(new TextPiece(t.Content)).Span.ToString() ?? t.Content, t)));
    }

    /// <summary>Highest token id + 1, counting added tokens.</summary>
    public int VocabSize { get; }

    /// <summary>Contents of the added tokens marked <c>"special": true</c>, by ascending id.</summary>
    public IReadOnlyList<string> SpecialTokens { get; }

    /// <exception cref="InvalidDataException">The file is not valid UTF-8 or JSON, or a field is missing or wrong: "PATH: field: problem".</exception>
    /// <exception cref="NotSupportedException">The file asks for a model, stage or regex construct SharpTune does not implement: "PATH: what".</exception>
    public static HuggingFaceTokenizer FromFile(string tokenizerJsonPath)
    {
        if (!File.Exists(tokenizerJsonPath))
            throw new FileNotFoundException($"Tokenizer file not found: {tokenizerJsonPath}", tokenizerJsonPath);
        var bytes = Utf8Validation.ReadJsonFile(tokenizerJsonPath, message => new InvalidDataException(message));
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{tokenizerJsonPath}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            try
            {
                return new HuggingFaceTokenizer(document.RootElement, tokenizerJsonPath);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{tokenizerJsonPath}: {e.Message}", e);
            }
            catch (NotSupportedException e)
            {
                throw new NotSupportedException($"{tokenizerJsonPath}: {e.Message}", e);
            }
        }
    }

    public void Encode(string text, List<int> ids)
    {
        EncodeScratch scratch = t_scratch ??= new EncodeScratch();
        scratch.Ids.Clear();

        scratch.RawSplits.Clear();
        _rawTextMatcher.Split(text, scratch.RawSplits);
        foreach (var (start, length, id) in scratch.RawSplits)
        {
            if (id >= 0)
            {
                scratch.Ids.Add(id);
                continue;
            }
            var piece = new TextPiece(text, start, length);
            if (_normalizer is not null)
                piece = _normalizer.Normalize(piece);
            EncodeNormalized(piece, scratch);
        }
        ids.AddRange(scratch.Ids);
    }

    private void EncodeNormalized(TextPiece piece, EncodeScratch scratch)
    {
        if (_normalizedTextMatcher.IsEmpty)
        {
            EncodeWithModel(piece, scratch);
            return;
        }
        scratch.NormalizedSplits.Clear();
        _normalizedTextMatcher.Split(piece.Span, scratch.NormalizedSplits);
        foreach (var (start, length, id) in scratch.NormalizedSplits)
        {
            if (id >= 0)
                scratch.Ids.Add(id);
            else
                EncodeWithModel(piece.Slice(start, length), scratch);
        }
    }

    private void EncodeWithModel(TextPiece piece, EncodeScratch scratch)
    {
        List<TextPiece> current = scratch.PiecesA, next = scratch.PiecesB;
        current.Clear();
        current.Add(piece);
        foreach (PreTokenizer stage in _preTokenizerStages)
        {
            next.Clear();
            stage.Split(current, next, scratch.Matches);
            (current, next) = (next, current);
        }
        foreach (TextPiece word in current)
            _model.Encode(word.Span, scratch.Ids);
    }

    /// <summary>
    /// Text of <paramref name="ids"/>: the byte-level bytes of all tokens are concatenated and decoded as UTF-8,
    /// invalid sequences becoming U+FFFD exactly like Rust's <c>String::from_utf8_lossy</c>. Unknown ids are skipped.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var bytes = new ArrayBufferWriter<byte>(ids.Length * 4 + 16);
        foreach (int id in ids)
            AppendTokenBytes(id, skipSpecialTokens, bytes);
        return Encoding.UTF8.GetString(bytes.WrittenSpan);
    }

    public int? TokenToId(string token)
    {
        if (_addedTokenIds.TryGetValue(token, out int addedId))
            return addedId;
        return _model.Vocab.TryGetValue(token, out int id) ? id : null;
    }

    public string? IdToToken(int id) =>
        (uint)id < (uint)VocabSize ? _addedTokenContents[id] ?? _modelTokens[id] : null;

    /// <summary>True for added tokens marked <c>"special": true</c>.</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)VocabSize && _isSpecial[id];

    /// <summary>
    /// Appends the bytes a token contributes to decoded text. Added tokens contribute their content as is; model
    /// tokens are mapped back through the byte-level alphabet unless they contain a character outside it, in which
    /// case HF's ByteLevel decoder keeps the token's own UTF-8.
    /// </summary>
    public void AppendTokenBytes(int id, bool skipSpecialTokens, IBufferWriter<byte> output)
    {
        if ((uint)id >= (uint)VocabSize || (skipSpecialTokens && _isSpecial[id]))
            return;
        string? added = _addedTokenContents[id];
        if (added is not null)
        {
            WriteUtf8(added, output);
            return;
        }
        string? token = _modelTokens[id];
        if (token is null)
            return;
        Span<byte> destination = output.GetSpan(token.Length);
        for (int i = 0; i < token.Length; i++)
        {
            int value = ByteLevelAlphabet.CharToByte(token[i]);
            if (value < 0)
            {
                WriteUtf8(token, output);
                return;
            }
            destination[i] = (byte)value;
        }
        output.Advance(token.Length);
    }

    /// <summary>Encodes straight into the writer: streaming decode calls this once per generated token.</summary>
    private static void WriteUtf8(string text, IBufferWriter<byte> output) =>
        output.Advance(Encoding.UTF8.GetBytes(text, output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length))));

    private static void RequireByteLevelDecoder(JsonElement root)
    {
        string? type = root.TryGetProperty("decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object
            ? TokenizerJson.RequiredString(decoder, "type", "decoder")
            : null;
        if (type != "ByteLevel")
            throw new NotSupportedException($"tokenizer.json decoder '{type ?? "null"}' is not supported; only ByteLevel is.");
    }

    /// <summary>Per-thread lists reused across <see cref="Encode"/> calls so that encoding allocates little.</summary>
    private sealed class EncodeScratch
    {
        public readonly List<int> Ids = new();
        public readonly List<(int Start, int Length, int Id)> RawSplits = new();
        public readonly List<(int Start, int Length, int Id)> NormalizedSplits = new();
        public readonly List<TextPiece> PiecesA = new();
        public readonly List<TextPiece> PiecesB = new();
        public readonly List<(int Start, int Length)> Matches = new();
    }
}
