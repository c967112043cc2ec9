using System.Buffers;
using System.Text.Unicode;
using SharpTune.Tokenization;

namespace SharpTune.Inference;

/// <summary>
/// A rule on which tokens a sequence may generate next (constrained decoding): <see cref="BatchGenerator"/> masks
/// every token it refuses before choosing, and ends the sequence as stopped once nothing but a stop may follow.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>Whether the (non-stop) token <paramref name="id"/> may come next.</summary>
    bool Allows(int id);

    /// <summary>Records the token chosen next (one <see cref="Allows"/> accepted).</summary>
    void Accept(int id);

    /// <summary>Whether a stop token may come next.</summary>
    bool CanStop { get; }

    /// <summary>Whether nothing but a stop may come next: generation ends there.</summary>
    bool MustStop { get; }
}

/// <summary>Every token's bytes as the decoder writes them, computed once per tokenizer; special tokens have none.</summary>
public sealed class TokenBytes
{
    private readonly byte[]?[] _bytes;
    private readonly bool[] _plainStringText;

    public TokenBytes(Tokenizer tokenizer)
    {
        _bytes = new byte[tokenizer.VocabSize][];
        _plainStringText = new bool[tokenizer.VocabSize];
        var buffer = new ArrayBufferWriter<byte>(64);
        for (int id = 0; id < _bytes.Length; id++)
        {
            if (tokenizer.IsSpecial(id)) continue;
            buffer.ResetWrittenCount();
            tokenizer.AppendTokenBytes(id, skipSpecialTokens: false, buffer);
            // An empty token would let a constrained sequence run without making progress.
            if (buffer.WrittenCount == 0) continue;
            _bytes[id] = buffer.WrittenSpan.ToArray();
            _plainStringText[id] = Utf8.IsValid(buffer.WrittenSpan) && !buffer.WrittenSpan.ContainsAny(NotPlain);
        }
    }

    private static readonly SearchValues<byte> NotPlain = SearchValues.Create([(byte)'"', (byte)'\\', .. Enumerable.Range(0, 0x20).Select(b => (byte)b)]);

    /// <summary>Whole UTF-8 characters with no quote, backslash or control character: text that may stand as is inside a JSON string.</summary>
    public bool IsPlainStringText(int id) => (uint)id < (uint)_plainStringText.Length && _plainStringText[id];

    /// <summary>The token's bytes, or null for a special, empty or unknown id (never part of constrained text).</summary>
    public byte[]? this[int id] => (uint)id < (uint)_bytes.Length ? _bytes[id] : null;
}

/// <summary>Generated text that must be one JSON value valid for a schema (<see cref="JsonGrammar"/>), ending right after it.</summary>
/// <remarks>
/// A step may ask about the whole vocabulary (sampling masks it), so two shortcuts, per state, spare most tokens the
/// automaton: a token whose first byte cannot come next is refused at once, and inside a string any plain text token
/// is allowed at once.
/// </remarks>
public sealed class JsonConstraint(TokenBytes tokens, JsonSchema schema) : ITokenConstraint
{
    private JsonGrammar _state = JsonGrammar.Start(schema);
    private bool[]? _firstBytes;
    private bool? _inStringText;

    public bool Allows(int id)
    {
        if (tokens[id] is not { } bytes) return false;
        _firstBytes ??= Enumerable.Range(0, 256).Select(b => _state.Advance([(byte)b]) is not null).ToArray();
        if (!_firstBytes[bytes[0]]) return false;
        _inStringText ??= _state.InStringText;
        return (_inStringText.Value && tokens.IsPlainStringText(id)) || _state.Advance(bytes) is not null;
    }

    public void Accept(int id)
    {
        _state = (tokens[id] is { } bytes ? _state.Advance(bytes) : null) ?? throw new InvalidOperationException($"token {id} does not continue the JSON value");
        _firstBytes = null;
        _inStringText = null;
    }

    public bool CanStop => _state.CanEnd;
    public bool MustStop => _state.MustEnd;
}

/// <summary>Exactly these tokens, in order (text the reply must begin or end with).</summary>
public sealed class ForcedTokens(IReadOnlyList<int> ids) : ITokenConstraint
{
    private int _next;

    public bool Allows(int id) => _next < ids.Count && ids[_next] == id;

    public void Accept(int id)
    {
        if (!Allows(id)) throw new InvalidOperationException($"token {id} is not the forced token");
        _next++;
    }

    public bool CanStop => _next == ids.Count;
    public bool MustStop => _next == ids.Count;
}

/// <summary>Constraints one after another: each holds until it must stop, then the next one takes over.</summary>
public sealed class ConstraintChain(IReadOnlyList<ITokenConstraint> parts) : ITokenConstraint
{
    private int _current;

    private ITokenConstraint? Current
    {
        get
        {
            while (_current < parts.Count && parts[_current].MustStop) _current++;
            return _current < parts.Count ? parts[_current] : null;
        }
    }

    public bool Allows(int id) => Current?.Allows(id) ?? false;

    public void Accept(int id) => (Current ?? throw new InvalidOperationException("the constrained text is complete")).Accept(id);

    public bool CanStop => Current is null || (_current == parts.Count - 1 && parts[_current].CanStop);
    public bool MustStop => Current is null;
}
