using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// A SentencePiece <c>tokenizer.model</c>, encoding and decoding exactly as the sentencepiece library does
/// (<c>spm_encode --output_format=id</c>, no bos/eos added): the text normalised by <see cref="SentencePieceNormalizer"/>,
/// segmented by BPE (bpe_model.cc), Unigram (unigram_model.cc), characters or words, runs of unknown pieces merged into one, or with byte
/// fallback spelled as &lt;0xXX&gt; pieces. Optionally extra special tokens follow the vocabulary, as ChatGLM3's
/// SPTokenizer appends them: like its default <c>encode_special_tokens=False</c>, text is never split at them (a
/// template puts their ids in itself, by <see cref="TokenToId"/>); they decode as written.
/// </summary>
internal sealed class SentencePieceTokenizer : ITokenizerModel
{
    /// <summary>ChatGLM3's tokens after the SentencePiece vocabulary, in id order (tokenization_chatglm.py's SPTokenizer).</summary>
    public static readonly string[] ChatGlm3SpecialTokens =
        ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"];

    private const string SpaceSymbol = "\u2581";
    /// <summary>unigram_model.cc's kUnkPenalty: an unknown character scores this much below the worst piece.</summary>
    private const float UnknownPenalty = 10.0f;

    private readonly SentencePieceEntry[] _pieces;
    private readonly Dictionary<string, int> _pieceIds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieceIdsBySpan;
    private readonly Dictionary<string, int> _reservedIds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _reservedIdsBySpan;
    private readonly string[] _userDefinedLongestFirst;
    private readonly int _unknownId;
    private readonly int[] _byteIds = new int[256];
    private readonly int[] _byteValueOfId;
    private readonly SentencePieceNormalizer _normalizer;
    private readonly SentencePieceModelProto _proto;
    private readonly PieceTrie? _unigramTrie;
    private readonly float _minScore = float.MaxValue;
    /// <summary>Starts at C's FLT_MIN (the smallest positive normal float), as unigram_model.cc's max_score_ does.</summary>
    private readonly float _maxScore = 1.17549435E-38f;
    private readonly string[] _extraSpecialTokens;
    private readonly string[] _specialTokens;

    /// <param name="extraSpecialTokens">Tokens given the ids after the vocabulary, in order (ChatGLM3's), or none.</param>
    public SentencePieceTokenizer(SentencePieceModelProto proto, IReadOnlyList<string> extraSpecialTokens)
    {
        _proto = proto;
        _pieces = proto.Pieces.ToArray();
        _unknownId = -1;
        _byteValueOfId = new int[_pieces.Length];
        Array.Fill(_byteValueOfId, -1);
        var userDefined = new List<string>();
        for (int id = 0; id < _pieces.Length; id++)
        {
            var (piece, score, type) = _pieces[id];
            bool isNormal = type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
            if (!(isNormal ? _pieceIds : _reservedIds).TryAdd(piece, id))
                throw new InvalidDataException($"pieces[{id}]: piece {IO.MessageText.Quote(piece)} is already defined");
            if (type == SentencePieceType.UserDefined)
                userDefined.Add(piece);
            if (type == SentencePieceType.Unknown)
            {
                if (_unknownId >= 0)
                    throw new InvalidDataException($"pieces[{id}]: a second unknown piece (the first is pieces[{_unknownId}])");
                _unknownId = id;
            }
            if (type == SentencePieceType.Byte)
            {
                if (!proto.ByteFallback)
                    throw new InvalidDataException($"pieces[{id}]: byte piece {IO.MessageText.Quote(piece)} in a model " +
                        "trained without byte_fallback");
                int value = ByteOfPiece(piece);
                if (value < 0)
                    throw new InvalidDataException($"pieces[{id}]: byte piece {IO.MessageText.Quote(piece)} is not <0xXX>");
                _byteValueOfId[id] = value;
            }
            if (type == SentencePieceType.Normal)
            {
                _minScore = Math.Min(_minScore, score);
                _maxScore = Math.Max(_maxScore, score);
            }
        }
        if (_unknownId < 0)
            throw new InvalidDataException("pieces: no piece of type UNKNOWN");
        for (int b = 0; b < 256; b++)
            _byteIds[b] = _reservedIds.TryGetValue($"<0x{b:X2}>", out int id) ? id : _unknownId;
        _pieceIdsBySpan = _pieceIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _reservedIdsBySpan = _reservedIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _userDefinedLongestFirst = userDefined.OrderByDescending(s => s.Length).ToArray();
        _normalizer = new SentencePieceNormalizer(proto, userDefined);
        if (proto.ModelType == SentencePieceModelType.Unigram)
            _unigramTrie = new PieceTrie(_pieceIds);

        _extraSpecialTokens = extraSpecialTokens.ToArray();
        _specialTokens = Enumerable.Range(0, _pieces.Length).Where(id => _pieces[id].Type == SentencePieceType.Control)
            .Select(id => _pieces[id].Piece).Concat(_extraSpecialTokens).ToArray();
    }

    public int VocabSize => _pieces.Length + _extraSpecialTokens.Length;

    public IReadOnlyList<string> SpecialTokens => _specialTokens;

    /// <summary>sentencepiece's Encode: normalise, segment, then PopulateSentencePieceText's unknown handling.</summary>
    public void Encode(string text, List<int> ids)
    {
        string normalized = Encoding.UTF8.GetString(_normalizer.Normalize(Encoding.UTF8.GetBytes(text)));
        if (normalized.Length == 0)
            return;
        var segments = new List<(int Start, int Length, int Id)>();
        switch (_proto.ModelType)
        {
            case SentencePieceModelType.Unigram: SegmentUnigram(normalized, segments); break;
            case SentencePieceModelType.Bpe: SegmentBpe(normalized, segments); break;
            case SentencePieceModelType.Char: SegmentCharacters(normalized, segments); break;
            default: SegmentWords(normalized, segments); break;
        }

        bool previousUnknown = false;
        foreach (var (start, length, id) in segments)
        {
            bool unknown = id == _unknownId;
            if (unknown && _proto.ByteFallback)
            {
                ReadOnlySpan<char> piece = normalized.AsSpan(start, length);
                byte[] bytes = Encoding.UTF8.GetBytes(piece.ToArray());
                foreach (byte b in bytes)
                    ids.Add(_byteIds[b]);
            }
            else if (!(unknown && previousUnknown))
            {
                ids.Add(id);
            }
            previousUnknown = unknown;
        }
    }

    /// <summary>PieceToId: reserved pieces (control, unknown, byte) first, then the others, else the unknown id.</summary>
    private int PieceId(ReadOnlySpan<char> piece) =>
        _reservedIdsBySpan.TryGetValue(piece, out int id) || _pieceIdsBySpan.TryGetValue(piece, out id) ? id : _unknownId;

    /// <summary>char_model.cc: each character (a user-defined symbol whole) is a piece.</summary>
    private void SegmentCharacters(string text, List<(int Start, int Length, int Id)> output)
    {
        for (int i = 0; i < text.Length;)
        {
            int length = UserDefinedPrefixLength(text.AsSpan(i));
            if (length == 0)
                length = CharacterLength(text, i);
            output.Add((i, length, PieceId(text.AsSpan(i, length))));
            i += length;
        }
    }

    /// <summary>
    /// word_model.cc over model_interface.cc's SplitIntoWords: a word starts at the text's start and at every ▁, or
    /// with whitespace as a suffix ends after every ▁; each word is one piece or unknown.
    /// </summary>
    private void SegmentWords(string text, List<(int Start, int Length, int Id)> output)
    {
        int wordStart = 0;
        for (int i = 0; i < text.Length; i++)
        {
            bool isSpace = text[i] == SpaceSymbol[0];
            if (_proto.TreatWhitespaceAsSuffix ? isSpace && i + 1 < text.Length : isSpace && i > wordStart)
            {
                int end = _proto.TreatWhitespaceAsSuffix ? i + 1 : i;
                output.Add((wordStart, end - wordStart, PieceId(text.AsSpan(wordStart, end - wordStart))));
                wordStart = end;
            }
        }
        if (text.Length > wordStart)
            output.Add((wordStart, text.Length - wordStart, PieceId(text.AsSpan(wordStart))));
    }

    private static int CharacterLength(string text, int i) =>
        char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;

    /// <summary>
    /// bpe_model.cc: characters (user-defined symbols whole and frozen), then repeatedly the adjacent pair whose
    /// concatenation is the best-scoring piece (leftmost on ties) is merged; merged pieces of type UNUSED are split
    /// back into the pair that made them.
    /// </summary>
    private void SegmentBpe(string text, List<(int Start, int Length, int Id)> output)
    {
        var symbols = new List<BpeSymbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int length = UserDefinedPrefixLength(text.AsSpan(i));
            bool freeze = length > 0;
            if (!freeze)
                length = CharacterLength(text, i);
            int index = symbols.Count;
            symbols.Add(new BpeSymbol(i, length, index - 1, i + length < text.Length ? index + 1 : -1, freeze));
            i += length;
        }
        BpeSymbol[] s = symbols.ToArray();
        var agenda = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(
            Math.Max(1, s.Length), BpePairOrder.Instance);
        Dictionary<string, (int LeftStart, int LeftLength, int RightStart, int RightLength)>? reverseMerges = null;

        void MaybeAddPair(int left, int right)
        {
            if (left == -1 || right == -1 || s[left].Freeze || s[right].Freeze)
                return;
            int length = s[left].Length + s[right].Length;
            ReadOnlySpan<char> piece = text.AsSpan(s[left].Start, length);
            if (!_pieceIdsBySpan.TryGetValue(piece, out int id))
                return;
            agenda.Enqueue((left, right, length), (_pieces[id].Score, left));
            if (_pieces[id].Type == SentencePieceType.Unused)
            {
                reverseMerges ??= new(StringComparer.Ordinal);
                reverseMerges[piece.ToString()] = (s[left].Start, s[left].Length, s[right].Start, s[right].Length);
            }
        }

        for (int i = 1; i < s.Length; i++)
            MaybeAddPair(i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            ref BpeSymbol left = ref s[top.Left];
            ref BpeSymbol right = ref s[top.Right];
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != top.Length)
                continue;
            left.Length += right.Length;
            left.Next = right.Next;
            if (right.Next >= 0)
                s[right.Next].Prev = top.Left;
            right.Length = 0;
            MaybeAddPair(left.Prev, top.Left);
            MaybeAddPair(top.Left, left.Next);
        }

        void Resegment(int start, int length)
        {
            ReadOnlySpan<char> piece = text.AsSpan(start, length);
            int id = PieceId(piece);
            if (_pieces[id].Type != SentencePieceType.Unused || reverseMerges is null ||
                !reverseMerges.TryGetValue(piece.ToString(), out var parts))
            {
                output.Add((start, length, id));
                return;
            }
            Resegment(parts.LeftStart, parts.LeftLength);
            Resegment(parts.RightStart, parts.RightLength);
        }

        for (int index = s.Length == 0 ? -1 : 0; index != -1; index = s[index].Next)
            Resegment(s[index].Start, s[index].Length);
    }

    private int UserDefinedPrefixLength(ReadOnlySpan<char> text)
    {
        foreach (string symbol in _userDefinedLongestFirst)
        {
            if (text.StartsWith(symbol, StringComparison.Ordinal))
                return symbol.Length;
        }
        return 0;
    }

    /// <summary>
    /// unigram_model.cc's EncodeOptimized: Viterbi over every piece that ends at each position, user-defined symbols
    /// scored to always win, a character no piece starts with taken as unknown at the lowest score minus the penalty.
    /// Scores are summed in float as the C++ does.
    /// </summary>
    private void SegmentUnigram(string text, List<(int Start, int Length, int Id)> output)
    {
        int size = text.Length;
        float unknownScore = _minScore - UnknownPenalty;
        var bestScore = new float[size + 1];
        var bestStart = new int[size + 1];
        var bestId = new int[size + 1];
        Array.Fill(bestStart, -1);
        PieceTrie trie = _unigramTrie!;
        for (int startsAt = 0; startsAt < size;)
        {
            float scoreTillHere = bestScore[startsAt];
            bool hasSingleNode = false;
            int charLength = CharacterLength(text, startsAt);
            int node = 0;
            for (int keyPosition = startsAt; keyPosition < size;)
            {
                node = trie.Child(node, text[keyPosition]);
                if (node < 0)
                    break;
                keyPosition++;
                int id = trie.Value(node);
                if (id < 0 || _pieces[id].Type == SentencePieceType.Unused)
                    continue;
                int length = keyPosition - startsAt;
                float candidate;
                if (_pieces[id].Type == SentencePieceType.UserDefined)
                    candidate = (float)(trie.Utf8Length(node) * _maxScore - 0.1 + scoreTillHere);
                else
                    candidate = _pieces[id].Score + scoreTillHere;
                if (bestStart[keyPosition] == -1 || candidate > bestScore[keyPosition])
                {
                    bestScore[keyPosition] = candidate;
                    bestStart[keyPosition] = startsAt;
                    bestId[keyPosition] = id;
                }
                if (length == charLength)
                    hasSingleNode = true;
            }
            if (!hasSingleNode)
            {
                int end = startsAt + charLength;
                float candidate = unknownScore + scoreTillHere;
                if (bestStart[end] == -1 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    bestStart[end] = startsAt;
                    bestId[end] = _unknownId;
                }
            }
            startsAt += charLength;
        }
        int first = output.Count;
        for (int endsAt = size; endsAt > 0; endsAt = bestStart[endsAt])
            output.Add((bestStart[endsAt], endsAt - bestStart[endsAt], bestId[endsAt]));
        output.Reverse(first, output.Count - first);
    }

    /// <summary>
    /// sentencepiece's Decode, with ChatGLM3's rule for the extra special tokens: the pieces between them are decoded
    /// on their own and the special tokens written as they are (or left out with <paramref name="skipSpecialTokens"/>).
    /// Unknown ids are skipped.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var text = new List<byte>(ids.Length * 4);
        int runStart = 0;
        for (int i = 0; i <= ids.Length; i++)
        {
            if (i < ids.Length && (uint)ids[i] < (uint)_pieces.Length)
                continue;
            DecodePieces(ids[runStart..i], text);
            runStart = i + 1;
            if (i < ids.Length && ids[i] >= _pieces.Length && ids[i] < VocabSize && !skipSpecialTokens)
                text.AddRange(Encoding.UTF8.GetBytes(_extraSpecialTokens[ids[i] - _pieces.Length]));
        }
        return Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(text));
    }

    /// <summary>
    /// Pieces of one run: byte pieces gathered and read as UTF-8, each byte of a malformed sequence becoming U+FFFD;
    /// control pieces empty; the unknown piece as the unknown surface; ▁ as a space, except the dummy prefix: while
    /// nothing has been written, a piece's leading ▁ is dropped, once (every time while extra whitespace is removed).
    /// </summary>
    private void DecodePieces(ReadOnlySpan<int> ids, List<byte> text)
    {
        int runOutputStart = text.Count;
        var bytes = new List<byte>();
        bool atStart = true, startSpaceDropped = false;
        foreach (int id in ids)
        {
            if (_byteValueOfId[id] >= 0)
            {
                bytes.Add((byte)_byteValueOfId[id]);
                continue;
            }
            AppendByteRun(bytes, text);
            if (startSpaceDropped || text.Count > runOutputStart)
                atStart = false;
            startSpaceDropped = false;
            var (piece, _, type) = _pieces[id];
            if (type == SentencePieceType.Control)
                continue;
            if (type == SentencePieceType.Unknown)
            {
                text.AddRange(Encoding.UTF8.GetBytes(_proto.UnknownSurface));
                continue;
            }
            ReadOnlySpan<char> surface = piece;
            if (atStart && (_proto.AddDummyPrefix || _proto.RemoveExtraWhitespaces) &&
                surface.StartsWith(SpaceSymbol, StringComparison.Ordinal))
            {
                surface = surface[SpaceSymbol.Length..];
                startSpaceDropped = !_proto.RemoveExtraWhitespaces;
            }
            text.AddRange(Encoding.UTF8.GetBytes(surface.ToString().Replace(SpaceSymbol, " ", StringComparison.Ordinal)));
        }
        AppendByteRun(bytes, text);
    }

    private static void AppendByteRun(List<byte> bytes, List<byte> text)
    {
        ReadOnlySpan<byte> rest = CollectionsMarshal.AsSpan(bytes);
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(rest, out _, out int consumed) == OperationStatus.Done)
            {
                text.AddRange(rest[..consumed]);
                rest = rest[consumed..];
            }
            else
            {
                text.AddRange("\uFFFD"u8);
                rest = rest[1..];
            }
        }
        bytes.Clear();
    }

    public int? TokenToId(string token)
    {
        if (_reservedIds.TryGetValue(token, out int id) || _pieceIds.TryGetValue(token, out id))
            return id;
        int extra = Array.IndexOf(_extraSpecialTokens, token);
        return extra >= 0 ? _pieces.Length + extra : null;
    }

    public string? IdToToken(int id) =>
        (uint)id < (uint)_pieces.Length ? _pieces[id].Piece
        : (uint)id < (uint)VocabSize ? _extraSpecialTokens[id - _pieces.Length]
        : null;

    public bool IsSpecial(int id) =>
        (uint)id < (uint)_pieces.Length ? _pieces[id].Type == SentencePieceType.Control : (uint)id < (uint)VocabSize;

    /// <summary>
    /// A token's bytes as it continues a text: ▁ as a space (no dummy-prefix removal, which only the start of a whole
    /// decode has), a byte piece as its byte, control pieces as nothing.
    /// </summary>
    public void AppendTokenBytes(int id, bool skipSpecialTokens, IBufferWriter<byte> output)
    {
        if ((uint)id >= (uint)VocabSize || (skipSpecialTokens && IsSpecial(id)))
            return;
        string text;
        if (id >= _pieces.Length)
            text = _extraSpecialTokens[id - _pieces.Length];
        else if (_byteValueOfId[id] >= 0)
        {
            output.GetSpan(1)[0] = (byte)_byteValueOfId[id];
            output.Advance(1);
            return;
        }
        else
            text = _pieces[id].Type switch
            {
                SentencePieceType.Control => "",
                SentencePieceType.Unknown => _proto.UnknownSurface,
                _ => _pieces[id].Piece.Replace(SpaceSymbol, " ", StringComparison.Ordinal),
            };
        output.Advance(Encoding.UTF8.GetBytes(text, output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length))));
    }

    private static int ByteOfPiece(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
        byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte value)
            ? value
            : -1;

    private struct BpeSymbol(int start, int length, int prev, int next, bool freeze)
    {
        public int Start = start;
        public int Length = length;
        public int Prev = prev;
        public int Next = next;
        public readonly bool Freeze = freeze;
    }

    /// <summary>bpe_model.cc's agenda order: the higher score first, then the leftmost pair.</summary>
    private sealed class BpePairOrder : IComparer<(float Score, int Left)>
    {
        public static readonly BpePairOrder Instance = new();

        public int Compare((float Score, int Left) x, (float Score, int Left) y) =>
            x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Left.CompareTo(y.Left);
    }

    /// <summary>A character trie of the pieces, for finding every piece that starts at a position.</summary>
    private sealed class PieceTrie
    {
        private readonly Dictionary<long, int> _children = new();
        private readonly List<int> _values = [-1];
        private readonly List<int> _utf8Lengths = [0];

        public PieceTrie(Dictionary<string, int> pieces)
        {
            foreach (var (piece, id) in pieces)
            {
                int node = 0;
                foreach (char c in piece)
                {
                    long key = ((long)node << 16) | c;
                    if (!_children.TryGetValue(key, out int child))
                    {
                        child = _values.Count;
                        _values.Add(-1);
                        _utf8Lengths.Add(0);
                        _children[key] = child;
                    }
                    node = child;
                }
                _values[node] = id;
                _utf8Lengths[node] = Encoding.UTF8.GetByteCount(piece);
            }
        }

        public int Child(int node, char c) => _children.TryGetValue(((long)node << 16) | c, out int child) ? child : -1;

        public int Value(int node) => _values[node];

        public int Utf8Length(int node) => _utf8Lengths[node];
    }
}
