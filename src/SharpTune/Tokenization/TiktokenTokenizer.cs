using System.Buffers;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// GLM-4's tiktoken-style <c>tokenizer.model</c>: lines of a base64 token and its rank. Text is split by GLM-4's
/// pre-tokenisation regex (tokenization_chatglm.py's pat_str), each piece's UTF-8 bytes are a token when they are
/// one, else merged pairwise as tiktoken does (the adjacent pair whose concatenation has the lowest rank first,
/// leftmost on ties). GLM-4's special tokens get the ids after the ranks and are recognised in text.
/// </summary>
internal sealed class TiktokenTokenizer : ITokenizerModel
{
    public const string Glm4Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>GLM-4's special tokens in id order, from <c>&lt;|endoftext|&gt;</c> on (its tokenizer_config.json).</summary>
    public static readonly string[] Glm4SpecialTokens =
    [
        "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>", "<|assistant|>",
        "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    ];

    /// <summary>Tokens keyed by their bytes written one char per byte (Latin-1), so spans of bytes can be looked up.</summary>
    private readonly Dictionary<string, int> _ranks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _ranksBySpan;
    private readonly byte[]?[] _tokenBytes;
    private readonly int _rankCount;
    private readonly string[] _specialTokens;
    private readonly AddedTokenMatcher _specialMatcher;
    private readonly CodePointRegex _pattern;

    [ThreadStatic]
    private static List<(int Start, int Length)>? t_matches;

    private TiktokenTokenizer(Dictionary<string, int> ranks, string path)
    {
        _ranks = ranks;
        _ranksBySpan = _ranks.GetAlternateLookup<ReadOnlySpan<char>>();
        _rankCount = ranks.Count == 0 ? 0 : ranks.Values.Max() + 1;
        _tokenBytes = new byte[]?[_rankCount];
        foreach (var (latin1, rank) in ranks)
            _tokenBytes[rank] = Encoding.Latin1.GetBytes(latin1);
        _specialTokens = Glm4SpecialTokens;
        _specialMatcher = new AddedTokenMatcher(_specialTokens.Select((token, i) => (token,
            new AddedToken(_rankCount + i, token, SingleWord: false, LeftStrip: false, RightStrip: false,
                Normalized: false, Special: true))));
        _pattern = new CodePointRegex(Glm4Pattern, path);
    }

    /// <summary>True when the file starts like a rank line: base64, a space, digits.</summary>
    public static bool LooksLikeRankFile(ReadOnlySpan<byte> bytes)
    {
        int space = bytes.IndexOf((byte)' ');
        return space > 0 && space + 1 < bytes.Length && char.IsAsciiDigit((char)bytes[space + 1]) &&
               !bytes[..space].ContainsAnyExcept(SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="u8));
    }

    /// <exception cref="InvalidDataException">A line is not "BASE64 RANK", or a token or rank repeats: "line N: problem".</exception>
    public static TiktokenTokenizer FromBytes(byte[] bytes, string path)
    {
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenRanks = new HashSet<int>();
        string text = Encoding.ASCII.GetString(bytes);
        int lineNumber = 0;
        foreach (string rawLine in text.Split('\n'))
        {
            lineNumber++;
            string line = rawLine.Trim();
            if (line.Length == 0)
                continue;
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            byte[] token;
            if (fields.Length != 2 || !int.TryParse(fields[1], System.Globalization.NumberStyles.None, null, out int rank)
                || rank > Tokenizer.MaxTokenId)
                throw new InvalidDataException($"line {lineNumber}: expected 'BASE64TOKEN RANK' with a rank from 0 to " +
                    $"{Tokenizer.MaxTokenId}, found {IO.MessageText.Quote(line)}");
            try
            {
                token = Convert.FromBase64String(fields[0]);
            }
            catch (FormatException)
            {
                throw new InvalidDataException($"line {lineNumber}: token {IO.MessageText.Quote(fields[0])} is not base64");
            }
            if (token.Length == 0)
                throw new InvalidDataException($"line {lineNumber}: empty token");
            if (!ranks.TryAdd(Encoding.Latin1.GetString(token), rank))
                throw new InvalidDataException($"line {lineNumber}: token {IO.MessageText.Quote(fields[0])} repeats");
            if (!seenRanks.Add(rank))
                throw new InvalidDataException($"line {lineNumber}: rank {rank} repeats");
        }
        return new TiktokenTokenizer(ranks, path);
    }

    public int VocabSize => _rankCount + _specialTokens.Length;

    public IReadOnlyList<string> SpecialTokens => _specialTokens;

    public void Encode(string text, List<int> ids)
    {
        var splits = new List<(int Start, int Length, int Id)>();
        _specialMatcher.Split(text, splits);
        var matches = t_matches ??= new List<(int Start, int Length)>();
        foreach (var (start, length, id) in splits)
        {
            if (id >= 0)
            {
                ids.Add(id);
                continue;
            }
            matches.Clear();
            _pattern.FindMatches(text.AsSpan(start, length), matches);
            foreach (var (matchStart, matchLength) in matches)
                EncodePiece(Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(text.Substring(start + matchStart, matchLength))), ids);
        }
    }

    /// <summary>tiktoken's byte_pair_merge over one pre-tokenised piece, its bytes as Latin-1 chars.</summary>
    private void EncodePiece(string piece, List<int> ids)
    {
        if (_ranksBySpan.TryGetValue(piece, out int whole))
        {
            ids.Add(whole);
            return;
        }
        // Part boundaries; parts[i] .. parts[i + 1] is one part.
        var parts = new List<int>(piece.Length + 1);
        for (int i = 0; i <= piece.Length; i++)
            parts.Add(i);
        while (parts.Count > 2)
        {
            int bestRank = int.MaxValue, bestIndex = -1;
            for (int i = 0; i + 2 < parts.Count; i++)
            {
                if (_ranksBySpan.TryGetValue(piece.AsSpan(parts[i], parts[i + 2] - parts[i]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    bestIndex = i;
                }
            }
            if (bestIndex < 0)
                break;
            parts.RemoveAt(bestIndex + 1);
        }
        for (int i = 0; i + 1 < parts.Count; i++)
        {
            if (!_ranksBySpan.TryGetValue(piece.AsSpan(parts[i], parts[i + 1] - parts[i]), out int rank))
                throw new InvalidOperationException($"the rank file has no token for byte 0x{(int)piece[parts[i]]:X2}; " +
                    "a tiktoken vocabulary must hold every single byte");
            ids.Add(rank);
        }
    }

    /// <summary>Token bytes concatenated and read as UTF-8 with maximal-subpart U+FFFD replacement, as Python's
    /// <c>bytes.decode("utf-8", errors="replace")</c> does; unknown ids skipped.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var bytes = new ArrayBufferWriter<byte>(ids.Length * 4 + 16);
        foreach (int id in ids)
            AppendTokenBytes(id, skipSpecialTokens, bytes);
        return Encoding.UTF8.GetString(bytes.WrittenSpan);
    }

    public int? TokenToId(string token)
    {
        int special = Array.IndexOf(_specialTokens, token);
        if (special >= 0)
            return _rankCount + special;
        return _ranks.TryGetValue(Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(token)), out int rank) ? rank : null;
    }

    /// <summary>A rank's bytes as text (invalid UTF-8 as U+FFFD), or a special token's content.</summary>
    public string? IdToToken(int id) =>
        (uint)id < (uint)_rankCount ? (_tokenBytes[id] is { } bytes ? Encoding.UTF8.GetString(bytes) : null)
        : (uint)id < (uint)VocabSize ? _specialTokens[id - _rankCount]
        : null;

    public bool IsSpecial(int id) => id >= _rankCount && id < VocabSize;

    public void AppendTokenBytes(int id, bool skipSpecialTokens, IBufferWriter<byte> output)
    {
        if ((uint)id >= (uint)VocabSize || (skipSpecialTokens && IsSpecial(id)))
            return;
        ReadOnlySpan<byte> bytes = id < _rankCount ? _tokenBytes[id] : Encoding.UTF8.GetBytes(_specialTokens[id - _rankCount]);
        bytes.CopyTo(output.GetSpan(bytes.Length));
        output.Advance(bytes.Length);
    }
}
