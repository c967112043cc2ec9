using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>The <c>normalizer</c> section of tokenizer.json.</summary>
internal abstract class Normalizer
{
    /// <summary>Returns the piece itself when normalisation leaves it unchanged, so the common case copies nothing.</summary>
    public abstract TextPiece Normalize(TextPiece piece);

    /// <summary>Null when the file has no normalizer.</summary>
    public static Normalizer? FromJson(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
            return null;
        string type = TokenizerJson.RequiredString(element, "type", "normalizer");
        return type switch
        {
            "NFC" => new NfcNormalizer(),
            "Sequence" => new SequenceNormalizer(
                TokenizerJson.RequiredArray(element, "normalizers", "a Sequence normalizer").EnumerateArray().Select(FromJson).OfType<Normalizer>().ToArray()),
            _ => throw new NotSupportedException($"tokenizer.json normalizer type {MessageText.Quote(type)} is not supported."),
        };
    }

    private sealed class NfcNormalizer : Normalizer
    {
        public override TextPiece Normalize(TextPiece piece) =>
            CanonicalComposition.IsNormalized(piece.Span)
                ? piece
                : new TextPiece(CanonicalComposition.Normalize(piece.Span.ToString()));
    }

    private sealed class SequenceNormalizer(Normalizer[] normalizers) : Normalizer
    {
        public override TextPiece Normalize(TextPiece piece)
        {
            foreach (Normalizer normalizer in normalizers)
                piece = normalizer.Normalize(piece);
            return piece;
        }
    }
}
