namespace SharpTune.Tokenization;

/// <summary>A slice of a string, so that splitting text into pre-tokens does not copy it.</summary>
internal readonly record struct TextPiece(string Source, int Start, int Length)
{
    public TextPiece(string source) : this(source, 0, source.Length)
    {
    }

    public ReadOnlySpan<char> Span => Source.AsSpan(Start, Length);

    public TextPiece Slice(int start, int length) => new(Source, Start + start, length);
}
