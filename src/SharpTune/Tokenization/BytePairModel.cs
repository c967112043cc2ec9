using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>
/// The byte-level BPE model of tokenizer.json: a pre-token is UTF-8 encoded, each byte starts as the token of its
/// byte-level character, and adjacent symbols are merged lowest merge rank first (leftmost on ties), exactly like
/// HF's <c>Word::merge_all</c> priority queue.
/// </summary>
internal sealed class BytePairModel
{
    /// <summary>HF caps its per-model word cache at 10,000 entries; a larger cap suits long training corpora.</summary>
    private const int CacheCapacity = 200_000;

    /// <summary>Longer pre-tokens are rare and would bloat the cache.</summary>
    private const int MaxCachedWordLength = 64;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;

    /// <summary>Key: left id in the high 32 bits, right id in the low. Value: rank in the high 32 bits, merged id in the low.</summary>
    private readonly Dictionary<long, long> _merges;

    private readonly int[] _byteTokenIds;
    private readonly bool _ignoreMerges;
    private readonly int? _unknownTokenId;
    private readonly bool _fuseUnknown;
    private readonly ConcurrentDictionary<string, int[]> _cache = new();
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    /// <summary>Tracked separately because ConcurrentDictionary.Count takes every lock.</summary>
    private int _cachedWordCount;

    private BytePairModel(Dictionary<string, int> vocab, Dictionary<long, long> merges, bool ignoreMerges,
        int? unknownTokenId, bool fuseUnknown)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _ignoreMerges = ignoreMerges;
        _unknownTokenId = unknownTokenId;
        _fuseUnknown = fuseUnknown;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _byteTokenIds = new int[256];
        Span<char> single = stackalloc char[1];
        for (int value = 0; value < 256; value++)
        {
            single[0] = ByteLevelAlphabet.ByteToChar((byte)value);
            _byteTokenIds[value] = _vocabBySpan.TryGetValue(single, out int id) ? id : -1;
        }
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public static BytePairModel FromJson(JsonElement model)
    {
        string type = TokenizerJson.OptionalString(model, "type", "model") ?? "BPE";
        if (type != "BPE")
            throw new NotSupportedException($"tokenizer.json model type {MessageText.Quote(type)} is not supported; only BPE is.");
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number)
            throw new NotSupportedException("BPE dropout is not supported.");
        if (TokenizerJson.OptionalBool(model, "byte_fallback", "model", false))
            throw new NotSupportedException("BPE byte_fallback is not supported.");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (!string.IsNullOrEmpty(TokenizerJson.OptionalString(model, affix, "model")))
                throw new NotSupportedException($"BPE {affix} is not supported.");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        JsonElement vocabElement = TokenizerJson.Required(model, "vocab", "model");
        if (vocabElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"model.vocab must be an object of token: id, got {JsonKinds.Describe(vocabElement)}");
        foreach (JsonProperty entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new InvalidDataException(
                    $"model.vocab: token {MessageText.Quote(entry.Name)} has id {MessageText.Quote(entry.Value.GetRawText())}; ids are integers from 0");
            vocab[entry.Name] = id;
        }

        var merges = new Dictionary<long, long>(MergePairComparer.Instance);
        int rank = 0;
        foreach (JsonElement merge in TokenizerJson.RequiredArray(model, "merges", "model").EnumerateArray())
        {
            (string left, string right) = ReadMerge(merge, rank);
            int leftId = LookUp(vocab, left), rightId = LookUp(vocab, right), mergedId = LookUp(vocab, left + right);
            merges[((long)leftId << 32) | (uint)rightId] = ((long)rank << 32) | (uint)mergedId;
            rank++;
        }

        bool ignoreMerges = TokenizerJson.OptionalBool(model, "ignore_merges", "model", false);
        int? unknownTokenId = null;
        if (TokenizerJson.OptionalString(model, "unk_token", "model") is { } unknownToken)
            unknownTokenId = LookUp(vocab, unknownToken);
        bool fuseUnknown = TokenizerJson.OptionalBool(model, "fuse_unk", "model", false);
        return new BytePairModel(vocab, merges, ignoreMerges, unknownTokenId, fuseUnknown);
    }

    /// <summary>Merges come as legacy <c>"left right"</c> strings or, since tokenizers 0.20, <c>["left", "right"]</c>.</summary>
    private static (string Left, string Right) ReadMerge(JsonElement merge, int rank)
    {
        if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
            && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
            return (merge[0].GetString()!, merge[1].GetString()!);
        if (merge.ValueKind == JsonValueKind.String)
        {
            string[] parts = merge.GetString()!.Split(' ');
            if (parts.Length == 2)
                return (parts[0], parts[1]);
        }
        throw new InvalidDataException($"model.merges[{rank}]: malformed merge {MessageText.Quote(merge.GetRawText())} (expected \"left right\" or [\"left\", \"right\"])");
    }

    private static int LookUp(Dictionary<string, int> vocab, string token) =>
        vocab.TryGetValue(token, out int id)
            ? id
            : throw new InvalidDataException($"model: a merge or unk_token refers to {MessageText.Quote(token)}, which is not in the vocabulary");

    /// <summary>Appends the token ids of one pre-token (text before the byte-level mapping).</summary>
    public void Encode(ReadOnlySpan<char> word, List<int> output)
    {
        if (word.Length <= MaxCachedWordLength && _cacheBySpan.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }

        int start = output.Count;
        EncodeUncached(word, output);
        if (word.Length <= MaxCachedWordLength && _cachedWordCount < CacheCapacity
            && _cacheBySpan.TryAdd(word, output.GetRange(start, output.Count - start).ToArray()))
            Interlocked.Increment(ref _cachedWordCount);
    }

    private void EncodeUncached(ReadOnlySpan<char> word, List<int> output)
    {
        int byteCount = Encoding.UTF8.GetByteCount(word);
        // Symbol ids, previous links, next links, and the merge heap (at most one entry per initial pair plus two
        // per merge, so under 3 per byte) share one buffer, on the stack for ordinary words.
        int needed = 3 * byteCount + 2 * (3 * byteCount) + 2;
        int[]? rented = null;
        Span<int> buffer = needed <= 1024 ? stackalloc int[needed] : (rented = ArrayPool<int>.Shared.Rent(needed));
        byte[]? rentedBytes = null;
        Span<byte> bytes = byteCount <= 512 ? stackalloc byte[byteCount] : (rentedBytes = ArrayPool<byte>.Shared.Rent(byteCount));
        try
        {
            bytes = bytes[..Encoding.UTF8.GetBytes(word, bytes)];
            if (_ignoreMerges && TryEncodeWholeWord(bytes, output))
                return;
            var symbols = new SymbolList(buffer[..byteCount], buffer.Slice(byteCount, byteCount), buffer.Slice(2 * byteCount, byteCount));
            AddInitialSymbols(bytes, ref symbols);
            MergeAll(ref symbols, new MergeQueue(MemoryMarshal.Cast<int, long>(buffer[(3 * byteCount)..])));
            symbols.AppendIds(output);
        }
        finally
        {
            if (rented is not null)
                ArrayPool<int>.Shared.Return(rented);
            if (rentedBytes is not null)
                ArrayPool<byte>.Shared.Return(rentedBytes);
        }
    }

    /// <summary><c>ignore_merges</c>: a pre-token whose byte-level form is itself a vocabulary entry is emitted as is.</summary>
    private bool TryEncodeWholeWord(ReadOnlySpan<byte> bytes, List<int> output)
    {
        char[]? rented = null;
        Span<char> chars = bytes.Length <= 256 ? stackalloc char[bytes.Length] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        try
        {
            for (int i = 0; i < bytes.Length; i++)
                chars[i] = ByteLevelAlphabet.ByteToChar(bytes[i]);
            if (!_vocabBySpan.TryGetValue(chars[..bytes.Length], out int id))
                return false;
            output.Add(id);
            return true;
        }
        finally
        {
            if (rented is not null)
                ArrayPool<char>.Shared.Return(rented);
        }
    }

    private void AddInitialSymbols(ReadOnlySpan<byte> bytes, ref SymbolList symbols)
    {
        bool previousWasUnknown = false;
        foreach (byte value in bytes)
        {
            int id = _byteTokenIds[value];
            if (id >= 0)
            {
                symbols.Add(id);
                previousWasUnknown = false;
            }
            else if (_unknownTokenId is int unknownId)
            {
                if (!(_fuseUnknown && previousWasUnknown))
                    symbols.Add(unknownId);
                previousWasUnknown = true;
            }
        }
    }

    private void MergeAll(ref SymbolList symbols, MergeQueue queue)
    {
        for (int position = 0; position + 1 < symbols.Count; position++)
        {
            if (_merges.TryGetValue(PairKey(symbols.Id(position), symbols.Id(position + 1)), out long merge))
                queue.Push(Rank(merge), position);
        }

        while (queue.TryPop(out int rank, out int position))
        {
            // Entries go stale when a neighbour merged first; ranks are unique per pair, so a rank mismatch
            // means the pair at this position is no longer the one that was queued.
            if (!symbols.IsAlive(position))
                continue;
            int next = symbols.Next(position);
            if (next < 0 || !_merges.TryGetValue(PairKey(symbols.Id(position), symbols.Id(next)), out long merge)
                || Rank(merge) != rank)
                continue;

            symbols.MergeWithNext(position, MergedId(merge));

            int previous = symbols.Previous(position);
            if (previous >= 0 && _merges.TryGetValue(PairKey(symbols.Id(previous), symbols.Id(position)), out long left))
                queue.Push(Rank(left), previous);
            int following = symbols.Next(position);
            if (following >= 0 && _merges.TryGetValue(PairKey(symbols.Id(position), symbols.Id(following)), out long right))
                queue.Push(Rank(right), position);
        }
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// long's own hash XORs the two halves, so every pair with the same left^right collides; a multiplicative
    /// (Fibonacci) hash spreads the packed pair over all bits.
    /// </summary>
    private sealed class MergePairComparer : IEqualityComparer<long>
    {
        public static readonly MergePairComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long pair) => (int)((ulong)pair * 0x9E3779B97F4A7C15UL >> 32);
    }

    private static int Rank(long merge) => (int)(merge >> 32);

    private static int MergedId(long merge) => (int)merge;

    /// <summary>Doubly linked list of symbols over caller-provided storage; a merged-away symbol is marked dead.</summary>
    private ref struct SymbolList(Span<int> ids, Span<int> previous, Span<int> next)
    {
        private readonly Span<int> _ids = ids;
        private readonly Span<int> _previous = previous;
        private readonly Span<int> _next = next;

        public int Count { get; private set; }

        public void Add(int id)
        {
            _ids[Count] = id;
            _previous[Count] = Count - 1;
            _next[Count] = -1;
            if (Count > 0)
                _next[Count - 1] = Count;
            Count++;
        }

        public readonly int Id(int position) => _ids[position];

        public readonly int Next(int position) => _next[position];

        public readonly int Previous(int position) => _previous[position];

        public readonly bool IsAlive(int position) => _ids[position] >= 0;

        public readonly void MergeWithNext(int position, int mergedId)
        {
            int removed = _next[position];
            _ids[position] = mergedId;
            _ids[removed] = -1;
            int after = _next[removed];
            _next[position] = after;
            if (after >= 0)
                _previous[after] = position;
        }

        public readonly void AppendIds(List<int> output)
        {
            for (int position = 0; position >= 0 && position < Count; position = _next[position])
                output.Add(_ids[position]);
        }
    }

    /// <summary>Binary min-heap of (rank, position), ordered by rank then position like HF's <c>Merge</c> ordering.</summary>
    private ref struct MergeQueue(Span<long> storage)
    {
        private readonly Span<long> _heap = storage;
        private int _count;

        public void Push(int rank, int position)
        {
            long entry = ((long)rank << 32) | (uint)position;
            int index = _count++;
            while (index > 0)
            {
                int parent = (index - 1) / 2;
                if (_heap[parent] <= entry)
                    break;
                _heap[index] = _heap[parent];
                index = parent;
            }
            _heap[index] = entry;
        }

        public bool TryPop(out int rank, out int position)
        {
            if (_count == 0)
            {
                rank = position = 0;
                return false;
            }
            long top = _heap[0];
            long last = _heap[--_count];
            int index = 0;
            while (true)
            {
                int child = 2 * index + 1;
                if (child >= _count)
                    break;
                if (child + 1 < _count && _heap[child + 1] < _heap[child])
                    child++;
                if (_heap[child] >= last)
                    break;
                _heap[index] = _heap[child];
                index = child;
            }
            if (_count > 0)
                _heap[index] = last;
            rank = (int)(top >> 32);
            position = (int)top;
            return true;
        }
    }
}
