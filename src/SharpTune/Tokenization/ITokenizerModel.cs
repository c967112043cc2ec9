using System.Buffers;

namespace SharpTune.Tokenization;

/// <summary>
/// One tokenizer file format behind <see cref="Tokenizer"/>: Hugging Face's tokenizer.json, a SentencePiece model or a
/// tiktoken rank file. Texts arrive with lone surrogates already replaced by U+FFFD.
/// </summary>
internal interface ITokenizerModel
{
    int VocabSize { get; }
    IReadOnlyList<string> SpecialTokens { get; }
    void Encode(string text, List<int> ids);
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens);
    int? TokenToId(string token);
    string? IdToToken(int id);
    bool IsSpecial(int id);
    void AppendTokenBytes(int id, bool skipSpecialTokens, IBufferWriter<byte> output);
}
