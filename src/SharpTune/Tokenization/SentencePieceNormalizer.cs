using System.Buffers.Binary;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// sentencepiece's normalizer.cc over UTF-8 bytes: user-defined symbols kept as written, every other prefix replaced
/// by the precompiled charsmap's longest match (a darts-clone double-array trie whose values index NUL-terminated
/// strings in the blob after it), malformed bytes as U+FFFD; then leading, trailing and repeated spaces removed
/// (remove_extra_whitespaces), spaces escaped as ▁ (escape_whitespaces) and the dummy ▁ put before the text, or after
/// it when the trainer treated whitespace as a suffix.
/// </summary>
internal sealed class SentencePieceNormalizer
{
    private static readonly byte[] SpaceSymbol = "\u2581"u8.ToArray();
    private static readonly byte[] ReplacementCharacter = "\uFFFD"u8.ToArray();

    private readonly uint[] _trie;
    private readonly byte[] _normalized;
    private readonly byte[][] _userDefinedLongestFirst;
    private readonly bool _addDummyPrefix;
    private readonly bool _removeExtraWhitespaces;
    private readonly bool _escapeWhitespaces;
    private readonly bool _treatWhitespaceAsSuffix;

    public SentencePieceNormalizer(SentencePieceModelProto proto, IEnumerable<string> userDefinedSymbols)
    {
        (_trie, _normalized) = ReadCharsMap(proto.PrecompiledCharsMap);
        _userDefinedLongestFirst = userDefinedSymbols.Select(s => Encoding.UTF8.GetBytes(s))
            .OrderByDescending(s => s.Length).ToArray();
        _addDummyPrefix = proto.AddDummyPrefix;
        _removeExtraWhitespaces = proto.RemoveExtraWhitespaces;
        _escapeWhitespaces = proto.EscapeWhitespaces;
        _treatWhitespaceAsSuffix = proto.TreatWhitespaceAsSuffix;
    }

    public byte[] Normalize(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
            return [];
        if (_removeExtraWhitespaces)
        {
            while (!input.IsEmpty)
            {
                ReadOnlySpan<byte> normalized = NormalizePrefix(input, out int consumed);
                if (!normalized.SequenceEqual(" "u8))
                    break;
                input = input[consumed..];
            }
        }
        if (input.IsEmpty)
            return [];

        var output = new List<byte>(input.Length * 3 / 2 + 4);
        if (!_treatWhitespaceAsSuffix && _addDummyPrefix)
            AddWhitespace(output);
        bool isPreviousSpace = _removeExtraWhitespaces;
        while (!input.IsEmpty)
        {
            ReadOnlySpan<byte> normalized = NormalizePrefix(input, out int consumed);
            // A space after a space (or at the start) is dropped when extra whitespace is removed.
            while (isPreviousSpace && !normalized.IsEmpty && normalized[0] == (byte)' ')
                normalized = normalized[1..];
            if (!normalized.IsEmpty)
            {
                foreach (byte b in normalized)
                {
                    if (_escapeWhitespaces && b == (byte)' ')
                        output.AddRange(SpaceSymbol);
                    else
                        output.Add(b);
                }
                isPreviousSpace = normalized[^1] == (byte)' ';
            }
            input = input[consumed..];
            if (!_removeExtraWhitespaces)
                isPreviousSpace = false;
        }
        if (_removeExtraWhitespaces)
        {
            ReadOnlySpan<byte> space = _escapeWhitespaces ? SpaceSymbol : " "u8;
            while (output.Count >= space.Length &&
                   System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)[^space.Length..].SequenceEqual(space))
                output.RemoveRange(output.Count - space.Length, space.Length);
        }
        if (_treatWhitespaceAsSuffix && _addDummyPrefix)
            AddWhitespace(output);
        return output.ToArray();
    }

    private void AddWhitespace(List<byte> output)
    {
        if (_escapeWhitespaces)
            output.AddRange(SpaceSymbol);
        else
            output.Add((byte)' ');
    }

    /// <summary>The normalized form of the longest prefix the rules cover; <paramref name="consumed"/>: its input bytes.</summary>
    private ReadOnlySpan<byte> NormalizePrefix(ReadOnlySpan<byte> input, out int consumed)
    {
        foreach (byte[] symbol in _userDefinedLongestFirst)
        {
            if (input.StartsWith(symbol))
            {
                consumed = symbol.Length;
                return input[..symbol.Length];
            }
        }
        if (_trie.Length > 0 && LongestMatch(input) is var (length, value) && length > 0)
        {
            if (value > _normalized.Length)
                throw new InvalidDataException("normalizer_spec.precompiled_charsmap: a trie value points past the " +
                    $"{_normalized.Length}-byte normalization strings");
            int end = Array.IndexOf(_normalized, (byte)0, value);
            consumed = length;
            return _normalized.AsSpan(value, (end < 0 ? _normalized.Length : end) - value);
        }
        if (System.Text.Rune.DecodeFromUtf8(input, out _, out consumed) != System.Buffers.OperationStatus.Done)
        {
            consumed = 1;
            return ReplacementCharacter;
        }
        return input[..consumed];
    }

    /// <summary>darts-clone's commonPrefixSearch, keeping the longest hit: (length, value), length 0 when none.</summary>
    private (int Length, int Value) LongestMatch(ReadOnlySpan<byte> key)
    {
        int bestLength = 0, bestValue = 0;
        uint unit = _trie[0];
        uint nodePosition = Offset(unit);
        for (int i = 0; i < key.Length; i++)
        {
            nodePosition ^= key[i];
            if (nodePosition >= (uint)_trie.Length)
                break;
            unit = _trie[nodePosition];
            if ((unit & ((1u << 31) | 0xFF)) != key[i])
                break;
            nodePosition ^= Offset(unit);
            if (((unit >> 8) & 1) != 0)
            {
                if (nodePosition >= (uint)_trie.Length)
                    break;
                bestLength = i + 1;
                bestValue = (int)(_trie[nodePosition] & ((1u << 31) - 1));
            }
        }
        return (bestLength, bestValue);
    }

    private static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    /// <summary>The charsmap blob: a little-endian uint32 trie size in bytes, the trie's units, then the strings.</summary>
    private static (uint[] Trie, byte[] Normalized) ReadCharsMap(byte[] blob)
    {
        if (blob.Length == 0)
            return ([], []);
        if (blob.Length < 4)
            throw new InvalidDataException("normalizer_spec.precompiled_charsmap: shorter than its 4-byte header");
        uint trieSize = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieSize % 4 != 0 || trieSize == 0 || trieSize > blob.Length - 4)
            throw new InvalidDataException($"normalizer_spec.precompiled_charsmap: trie size {trieSize} does not fit the " +
                $"{blob.Length}-byte blob");
        var trie = new uint[trieSize / 4];
        for (int i = 0; i < trie.Length; i++)
            trie[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(4 + i * 4));
        byte[] normalized = blob.AsSpan(4 + (int)trieSize).ToArray();
        foreach (uint unit in trie)
        {
            // Leaf values index the strings blob; one beyond it would read outside it.
            if ((unit & (1u << 31)) != 0 && (unit & ((1u << 31) - 1)) > normalized.Length)
                throw new InvalidDataException("normalizer_spec.precompiled_charsmap: a trie value points past the " +
                    $"{normalized.Length}-byte normalization strings");
        }
        return (trie, normalized);
    }
}
