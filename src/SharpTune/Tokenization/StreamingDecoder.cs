using System.Buffers;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// Incremental <see cref="Tokenizer.Decode"/> for generation: each <see cref="Push"/> returns only text that is
/// final, holding back the bytes of a UTF-8 sequence that a later token may complete. The pieces returned by
/// Push and Flush concatenate to exactly <c>Decode(allIds, skipSpecialTokens)</c> for tokenizer.json and tiktoken
/// files, because both decode the same byte stream with the same maximal-subpart U+FFFD replacement. A SentencePiece
/// decode differs in two places token-at-a-time text cannot follow: it drops the dummy-prefix space of the first
/// piece and writes one U+FFFD per byte of a malformed sequence.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
    private readonly ArrayBufferWriter<byte> _tokenBytes = new(64);
    private char[] _chars = new char[64];

    public StreamingDecoder(Tokenizer t, bool skipSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(t);
        _tokenizer = t;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one token and returns the text it completes (possibly empty).</summary>
    public string Push(int id)
    {
        _tokenBytes.ResetWrittenCount();
        _tokenizer.AppendTokenBytes(id, _skipSpecialTokens, _tokenBytes);
        return DecodeBytes(_tokenBytes.WrittenSpan, flush: false);
    }

    /// <summary>Ends the stream: a held-back incomplete sequence becomes U+FFFD. The decoder can then be reused.</summary>
    public string Flush() => DecodeBytes(ReadOnlySpan<byte>.Empty, flush: true);

    private string DecodeBytes(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _utf8.GetCharCount(bytes, flush);
        if (needed == 0)
        {
            _utf8.GetChars(bytes, Span<char>.Empty, flush);
            return string.Empty;
        }
        if (_chars.Length < needed)
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int written = _utf8.GetChars(bytes, _chars, flush);
        return new string(_chars, 0, written);
    }
}
