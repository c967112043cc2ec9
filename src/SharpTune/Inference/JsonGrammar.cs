using System.Collections.Immutable;
using System.Text.Json;

namespace SharpTune.Inference;

/// <summary>
/// Which byte strings are prefixes of one JSON value valid for a <see cref="JsonSchema"/>: an incremental pushdown
/// automaton over UTF-8 bytes, so a token that ends inside a multi-byte character is judged correctly. A state is
/// immutable (advancing returns a new one), so checking a candidate token costs nothing to undo. The value ends right
/// after its last character: no whitespace may follow it. Between tokens at most <see cref="MaxSpaces"/> whitespace
/// characters in a row are allowed, so that a model cannot fill its budget with blanks.
/// </summary>
public sealed class JsonGrammar
{
    /// <summary>The longest run of whitespace allowed between two tokens of the JSON text.</summary>
    public const int MaxSpaces = 20;

    // anyOf, enum values sharing a prefix and a number that may go on or end make the automaton nondeterministic:
    // a state is the set of stacks still possible.
    private readonly ImmutableArray<Stack> _stacks;

    private JsonGrammar(ImmutableArray<Stack> stacks) => _stacks = stacks;

    /// <summary>The state before the first byte of a value matching <paramref name="schema"/>.</summary>
    /// <remarks>The value starts at once, as it ends at once: its whitespace allowance is spent before the first byte.</remarks>
    public static JsonGrammar Start(JsonSchema schema) => new([new Stack(new ValueStart(schema, MaxSpaces), new Stack(new Root(false), null))]);

    /// <summary>The state after <paramref name="bytes"/>, or null when they cannot continue a valid value.</summary>
    public JsonGrammar? Advance(ReadOnlySpan<byte> bytes)
    {
        var current = _stacks;
        var next = ImmutableArray.CreateBuilder<Stack>();
        foreach (byte b in bytes)
        {
            next.Clear();
            foreach (var stack in current) Feed(stack, b, next);
            if (next.Count == 0) return null;
            current = next.ToImmutable();
        }
        return new JsonGrammar(current);
    }

    /// <summary>The state after the UTF-8 of <paramref name="text"/>, or null.</summary>
    public JsonGrammar? Advance(string text) => Advance(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>The bytes so far form a whole valid value (a number may still go on).</summary>
    public bool CanEnd => _stacks.Any(CanEndAt);

    /// <summary>
    /// Inside a string (a value or a free key) between characters, whatever the alternatives: any whole UTF-8 text
    /// without a quote, backslash or control character continues it (<see cref="TokenBytes.IsPlainStringText"/>).
    /// </summary>
    public bool InStringText => _stacks.All(s => s.Top is StringFrame { Phase: StringPhase.Normal });

    /// <summary>The value is whole and nothing may follow it.</summary>
    public bool MustEnd => _stacks.All(s => s.Top is Root { Done: true });

    private static bool CanEndAt(Stack s) =>
        s.Top is Root { Done: true } || (s.Top is NumberFrame n && n.CanEnd && s.Below!.Top is Root);

    private sealed record Stack(Frame Top, Stack? Below);

    private abstract record Frame;

    private sealed record Root(bool Done) : Frame;

    /// <summary>Before a value: whitespace, then the first byte picks the kind.</summary>
    private sealed record ValueStart(JsonSchema Schema, int Spaces) : Frame;

    private enum ObjectPhase { Open, AfterComma, Key, Colon, Value, Next }

    private sealed record ObjectFrame(JsonSchema Schema, ImmutableHashSet<string> Seen, ObjectPhase Phase, string? Key, int Spaces) : Frame
    {
        public bool HasAllRequired => Schema.Required.All(Seen.Contains);
        public bool MayAddKey => Schema.AdditionalProperties is not null || Schema.Properties.Keys.Any(k => !Seen.Contains(k));
    }

    private enum ArrayPhase { Open, AfterComma, Value, Next }

    private sealed record ArrayFrame(JsonSchema Items, ArrayPhase Phase, int Spaces) : Frame;

    private enum StringPhase { Normal, Escape, Hex, Continuation, LowSurrogateBackslash, LowSurrogateU }

    /// <param name="Key">The raw bytes of an object key so far (from its opening quote), or null for a string value.</param>
    /// <param name="Pending">UTF-8 continuation bytes still due, or hex digits still due.</param>
    /// <param name="Low">The range the next continuation byte must be in (the first one is narrower after some lead bytes).</param>
    private sealed record StringFrame(StringPhase Phase, byte[]? Key, int Pending = 0, byte Low = 0x80, byte High = 0xBF, int HexValue = 0, bool LowSurrogate = false) : Frame;

    private enum NumberPhase { Minus, Zero, Int, Dot, Fraction, Exponent, ExponentSign, ExponentDigits }

    private sealed record NumberFrame(bool IntegerOnly, NumberPhase Phase) : Frame
    {
        public bool CanEnd => Phase is NumberPhase.Zero or NumberPhase.Int or NumberPhase.Fraction or NumberPhase.ExponentDigits;
    }

    /// <summary>Matching one of several exact texts (enum, const, true/false/null, or a closed object's keys).</summary>
    private sealed record LiteralFrame(IReadOnlyList<byte[]> Candidates, int Position, bool IsKey) : Frame;

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    private static void Feed(Stack s, byte b, ImmutableArray<Stack>.Builder output)
    {
        switch (s.Top)
        {
            case Root:
                return;
            case ValueStart v:
                FeedValueStart(v, s.Below!, b, output);
                return;
            case ObjectFrame o:
                FeedObject(o, s.Below!, b, output);
                return;
            case ArrayFrame a:
                FeedArray(a, s.Below!, b, output);
                return;
            case StringFrame str:
                if (FeedString(str, b) is { } next) output.Add(new Stack(next, s.Below));
                else if (str.Phase == StringPhase.Normal && b == '"' && Complete(s.Below!, str.Key is null ? null : [.. str.Key, b]) is { } done) output.Add(done);
                return;
            case NumberFrame n:
                if (FeedNumber(n, b) is { } phase) output.Add(new Stack(n with { Phase = phase }, s.Below));
                else if (n.CanEnd && Complete(s.Below!, null) is { } ended) Feed(ended, b, output);
                return;
            case LiteralFrame l:
                FeedLiteral(l, s.Below!, b, output);
                return;
        }
    }

    private static void FeedValueStart(ValueStart v, Stack below, byte b, ImmutableArray<Stack>.Builder output)
    {
        var schema = v.Schema;
        if (IsSpace(b))
        {
            if (v.Spaces < MaxSpaces) output.Add(new Stack(v with { Spaces = v.Spaces + 1 }, below));
            return;
        }
        if (schema.AnyOf is { } alternatives)
        {
            foreach (var alternative in alternatives) FeedValueStart(new ValueStart(alternative, v.Spaces), below, b, output);
            return;
        }
        if (schema.Literals is { } literals)
        {
            FeedLiteral(new LiteralFrame(literals, 0, IsKey: false), below, b, output);
            return;
        }
        var kinds = schema.Kinds;
        Frame? frame = b switch
        {
            (byte)'{' when kinds.HasFlag(JsonKinds.Object) => new ObjectFrame(schema, [], ObjectPhase.Open, null, 0),
            (byte)'[' when kinds.HasFlag(JsonKinds.Array) => new ArrayFrame(schema.Items, ArrayPhase.Open, 0),
            (byte)'"' when kinds.HasFlag(JsonKinds.String) => new StringFrame(StringPhase.Normal, null),
            (byte)'-' when (kinds & (JsonKinds.Number | JsonKinds.Integer)) != 0 => new NumberFrame(!kinds.HasFlag(JsonKinds.Number), NumberPhase.Minus),
            (byte)'0' when (kinds & (JsonKinds.Number | JsonKinds.Integer)) != 0 => new NumberFrame(!kinds.HasFlag(JsonKinds.Number), NumberPhase.Zero),
            >= (byte)'1' and <= (byte)'9' when (kinds & (JsonKinds.Number | JsonKinds.Integer)) != 0 => new NumberFrame(!kinds.HasFlag(JsonKinds.Number), NumberPhase.Int),
            (byte)'t' when kinds.HasFlag(JsonKinds.Boolean) => new LiteralFrame([True], 1, IsKey: false),
            (byte)'f' when kinds.HasFlag(JsonKinds.Boolean) => new LiteralFrame([False], 1, IsKey: false),
            (byte)'n' when kinds.HasFlag(JsonKinds.Null) => new LiteralFrame([Null], 1, IsKey: false),
            _ => null,
        };
        if (frame is not null) output.Add(new Stack(frame, below));
    }

    private static readonly byte[] True = "true"u8.ToArray(), False = "false"u8.ToArray(), Null = "null"u8.ToArray();

    private static void FeedObject(ObjectFrame o, Stack below, byte b, ImmutableArray<Stack>.Builder output)
    {
        if (IsSpace(b))
        {
            if (o.Spaces < MaxSpaces) output.Add(new Stack(o with { Spaces = o.Spaces + 1 }, below));
            return;
        }
        switch (o.Phase, b)
        {
            case (ObjectPhase.Open or ObjectPhase.AfterComma, (byte)'"'):
                var keyParent = new Stack(o with { Phase = ObjectPhase.Key, Spaces = 0 }, below);
                if (o.Schema.AdditionalProperties is not null)
                {
                    output.Add(new Stack(new StringFrame(StringPhase.Normal, [b]), keyParent));
                    return;
                }
                // A closed object: the key is one of its properties not yet written, in its compact JSON spelling.
                var keys = o.Schema.Properties.Keys.Where(k => !o.Seen.Contains(k)).Select(k => JsonSerializer.SerializeToUtf8Bytes(k, KeyWriting)).ToList();
                if (keys.Count > 0) output.Add(new Stack(new LiteralFrame(keys, 1, IsKey: true), keyParent));
                return;
            case (ObjectPhase.Open or ObjectPhase.Next, (byte)'}'):
                if (o.HasAllRequired && Complete(below, null) is { } done) output.Add(done);
                return;
            case (ObjectPhase.Colon, (byte)':'):
                var schema = o.Schema.Properties.TryGetValue(o.Key!, out var property) ? property : o.Schema.AdditionalProperties!;
                output.Add(new Stack(new ValueStart(schema, 0), new Stack(o with { Phase = ObjectPhase.Value, Spaces = 0 }, below)));
                return;
            case (ObjectPhase.Next, (byte)','):
                if (o.MayAddKey) output.Add(new Stack(o with { Phase = ObjectPhase.AfterComma, Spaces = 0 }, below));
                return;
        }
    }

    private static readonly JsonSerializerOptions KeyWriting = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static void FeedArray(ArrayFrame a, Stack below, byte b, ImmutableArray<Stack>.Builder output)
    {
        if (IsSpace(b))
        {
            if (a.Spaces < MaxSpaces) output.Add(new Stack(a with { Spaces = a.Spaces + 1 }, below));
            return;
        }
        switch (a.Phase)
        {
            case ArrayPhase.Open or ArrayPhase.AfterComma:
                if (b == ']' && a.Phase == ArrayPhase.Open)
                {
                    if (Complete(below, null) is { } done) output.Add(done);
                    return;
                }
                FeedValueStart(new ValueStart(a.Items, 0), new Stack(a with { Phase = ArrayPhase.Value, Spaces = 0 }, below), b, output);
                return;
            case ArrayPhase.Next when b == ',':
                output.Add(new Stack(a with { Phase = ArrayPhase.AfterComma, Spaces = 0 }, below));
                return;
            case ArrayPhase.Next when b == ']':
                if (Complete(below, null) is { } closed) output.Add(closed);
                return;
        }
    }

    /// <summary>The string after <paramref name="b"/>, or null when it does not continue it (the closing quote included).</summary>
    private static StringFrame? FeedString(StringFrame s, byte b)
    {
        byte[]? key = s.Key is null ? null : [.. s.Key, b];
        switch (s.Phase)
        {
            case StringPhase.Normal:
                if (b == '"' || b < 0x20) return null;
                if (b == '\\') return s with { Phase = StringPhase.Escape, Key = key };
                if (b < 0x80) return s with { Key = key };
                (int pending, byte low, byte high) = b switch
                {
                    >= 0xC2 and <= 0xDF => (1, (byte)0x80, (byte)0xBF),
                    0xE0 => (2, (byte)0xA0, (byte)0xBF),
                    0xED => (2, (byte)0x80, (byte)0x9F),
                    >= 0xE1 and <= 0xEF => (2, (byte)0x80, (byte)0xBF),
                    0xF0 => (3, (byte)0x90, (byte)0xBF),
                    >= 0xF1 and <= 0xF3 => (3, (byte)0x80, (byte)0xBF),
                    0xF4 => (3, (byte)0x80, (byte)0x8F),
                    _ => (0, (byte)0, (byte)0),
                };
                return pending == 0 ? null : s with { Phase = StringPhase.Continuation, Key = key, Pending = pending, Low = low, High = high };
            case StringPhase.Continuation:
                if (b < s.Low || b > s.High) return null;
                return s.Pending == 1
                    ? s with { Phase = StringPhase.Normal, Key = key, Pending = 0 }
                    : s with { Key = key, Pending = s.Pending - 1, Low = 0x80, High = 0xBF };
            case StringPhase.Escape:
                if (b == 'u') return s with { Phase = StringPhase.Hex, Key = key, Pending = 4, HexValue = 0 };
                return b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t'
                    ? s with { Phase = StringPhase.Normal, Key = key }
                    : null;
            case StringPhase.Hex:
                int digit = b switch
                {
                    >= (byte)'0' and <= (byte)'9' => b - '0',
                    >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
                    >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
                    _ => -1,
                };
                if (digit < 0) return null;
                int value = s.HexValue * 16 + digit;
                if (s.Pending > 1) return s with { Key = key, Pending = s.Pending - 1, HexValue = value };
                // A \u escape of a UTF-16 surrogate must be a high one followed by a low one: a lone one is no text.
                bool highSurrogate = value is >= 0xD800 and <= 0xDBFF, lowSurrogate = value is >= 0xDC00 and <= 0xDFFF;
                if (s.LowSurrogate != lowSurrogate) return null;
                return highSurrogate
                    ? s with { Phase = StringPhase.LowSurrogateBackslash, Key = key, Pending = 0, HexValue = 0 }
                    : s with { Phase = StringPhase.Normal, Key = key, Pending = 0, HexValue = 0, LowSurrogate = false };
            case StringPhase.LowSurrogateBackslash:
                return b == '\\' ? s with { Phase = StringPhase.LowSurrogateU, Key = key } : null;
            case StringPhase.LowSurrogateU:
                return b == 'u' ? s with { Phase = StringPhase.Hex, Key = key, Pending = 4, LowSurrogate = true } : null;
            default:
                return null;
        }
    }

    /// <summary>The number's phase after <paramref name="b"/>, or null when <paramref name="b"/> is not part of it.</summary>
    private static NumberPhase? FeedNumber(NumberFrame n, byte b)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        bool fractionOk = !n.IntegerOnly;
        return n.Phase switch
        {
            NumberPhase.Minus when b == '0' => NumberPhase.Zero,
            NumberPhase.Minus when digit => NumberPhase.Int,
            NumberPhase.Int when digit => NumberPhase.Int,
            NumberPhase.Zero or NumberPhase.Int when b == '.' && fractionOk => NumberPhase.Dot,
            NumberPhase.Zero or NumberPhase.Int or NumberPhase.Fraction when (b == 'e' || b == 'E') && fractionOk => NumberPhase.Exponent,
            NumberPhase.Dot or NumberPhase.Fraction when digit => NumberPhase.Fraction,
            NumberPhase.Exponent when b == '+' || b == '-' => NumberPhase.ExponentSign,
            NumberPhase.Exponent or NumberPhase.ExponentSign or NumberPhase.ExponentDigits when digit => NumberPhase.ExponentDigits,
            _ => null,
        };
    }

    private static void FeedLiteral(LiteralFrame l, Stack below, byte b, ImmutableArray<Stack>.Builder output)
    {
        var going = new List<byte[]>();
        foreach (var candidate in l.Candidates)
        {
            if (candidate.Length <= l.Position || candidate[l.Position] != b) continue;
            if (candidate.Length == l.Position + 1)
            {
                // Whole: the value ends here (another candidate may still go on, as 10 after 1).
                if (Complete(below, l.IsKey ? candidate : null) is { } done) output.Add(done);
            }
            else going.Add(candidate);
        }
        if (going.Count > 0) output.Add(new Stack(l with { Candidates = going, Position = l.Position + 1 }, below));
    }

    /// <summary>
    /// The stack once the value (or key, given as its JSON text) on top of <paramref name="below"/> is whole, or null
    /// when its parent refuses it (a key written twice).
    /// </summary>
    private static Stack? Complete(Stack below, byte[]? key)
    {
        switch (below.Top)
        {
            case Root:
                return new Stack(new Root(true), null);
            case ObjectFrame { Phase: ObjectPhase.Key } o:
                string name = JsonSerializer.Deserialize<string>(key!)!;
                return o.Seen.Contains(name) ? null : new Stack(o with { Phase = ObjectPhase.Colon, Key = name, Seen = o.Seen.Add(name), Spaces = 0 }, below.Below);
            case ObjectFrame o:
                return new Stack(o with { Phase = ObjectPhase.Next, Key = null, Spaces = 0 }, below.Below);
            case ArrayFrame a:
                return new Stack(a with { Phase = ArrayPhase.Next, Spaces = 0 }, below.Below);
            default:
                throw new InvalidOperationException($"a value cannot end inside {below.Top.GetType().Name}");
        }
    }
}
