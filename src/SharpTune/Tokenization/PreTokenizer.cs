using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Tokenization;

/// <summary>One splitting stage of the <c>pre_tokenizer</c> section of tokenizer.json.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Splits each input piece, appending the non-empty results to <paramref name="output"/> in order.</summary>
    public abstract void Split(List<TextPiece> input, List<TextPiece> output, List<(int Start, int Length)> matchScratch);

    /// <summary>
    /// Reads the pre-tokenizer as a flat list of stages (nested Sequences are flattened). The byte-level mapping is
    /// performed by <see cref="BytePairModel"/> on UTF-8 bytes, so ByteLevel must be the last stage: a stage after it
    /// would see byte-level characters rather than text.
    /// </summary>
    /// <param name="source">The tokenizer file, named by errors that only encoding can find (a regex that times out).</param>
    public static IReadOnlyList<PreTokenizer> ReadStages(JsonElement element, string source)
    {
        var stages = new List<PreTokenizer>();
        if (element.ValueKind != JsonValueKind.Null)
            AddStages(element, stages, source);
        if (stages.Count == 0 || stages[^1] is not ByteLevelPreTokenizer
            || stages.Take(stages.Count - 1).Any(stage => stage is ByteLevelPreTokenizer))
            throw new NotSupportedException("Only byte-level BPE tokenizers whose pre_tokenizer ends with a single ByteLevel stage are supported.");
        return stages;
    }

    private static void AddStages(JsonElement element, List<PreTokenizer> stages, string source)
    {
        string type = TokenizerJson.RequiredString(element, "type", "pre_tokenizer");
        switch (type)
        {
            case "Sequence":
                foreach (JsonElement child in TokenizerJson.RequiredArray(element, "pretokenizers", "a Sequence pre_tokenizer").EnumerateArray())
                    AddStages(child, stages, source);
                break;
            case "Split":
                stages.Add(SplitPreTokenizer.FromJson(element, source));
                break;
            case "ByteLevel":
                stages.Add(new ByteLevelPreTokenizer(
                    addPrefixSpace: TokenizerJson.OptionalBool(element, "add_prefix_space", "a ByteLevel pre_tokenizer", false),
                    useRegex: TokenizerJson.OptionalBool(element, "use_regex", "a ByteLevel pre_tokenizer", true)));
                break;
            default:
                throw new NotSupportedException($"tokenizer.json pre_tokenizer type {MessageText.Quote(type)} is not supported.");
        }
    }
}

/// <summary>How a Split stage treats the matched delimiters (HF <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

internal sealed class SplitPreTokenizer(CodePointRegex pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public static SplitPreTokenizer FromJson(JsonElement element, string source)
    {
        JsonElement patternElement = TokenizerJson.Required(element, "pattern", "a Split pre_tokenizer");
        string regex = TokenizerJson.OptionalString(patternElement, "Regex", "a Split pattern")
            ?? EscapeLiteral(TokenizerJson.RequiredString(patternElement, "String", "a Split pattern without \"Regex\""));
        string behaviorName = TokenizerJson.RequiredString(element, "behavior", "a Split pre_tokenizer");
        if (!Enum.TryParse(behaviorName, out SplitBehavior behavior))
            throw new NotSupportedException($"Split behavior {MessageText.Quote(behaviorName)} is not supported.");
        bool invert = TokenizerJson.OptionalBool(element, "invert", "a Split pre_tokenizer", false);
        return new SplitPreTokenizer(new CodePointRegex(regex, source), behavior, invert);
    }

    public override void Split(List<TextPiece> input, List<TextPiece> output, List<(int Start, int Length)> matchScratch)
    {
        foreach (TextPiece piece in input)
        {
            matchScratch.Clear();
            pattern.FindMatches(piece.Span, matchScratch);
            SplitPiece(piece, matchScratch, output);
        }
    }

    /// <summary>
    /// Walks the alternating non-match/match segments that cover the piece (HF <c>Pattern::find_matches</c>,
    /// with match flags flipped when inverted) and applies the delimiter behaviour.
    /// </summary>
    private void SplitPiece(TextPiece piece, List<(int Start, int Length)> matches, List<TextPiece> output)
    {
        int pendingStart = -1, pendingEnd = -1;
        bool? previousIsMatch = null;
        int position = 0;
        for (int m = 0; m <= matches.Count; m++)
        {
            int matchStart = m < matches.Count ? matches[m].Start : piece.Length;
            if (position < matchStart)
                Accept(position, matchStart, invert);
            if (m == matches.Count)
                break;
            int matchEnd = matches[m].Start + matches[m].Length;
            Accept(matchStart, matchEnd, !invert);
            position = matchEnd;
        }
        Flush();

        void Accept(int start, int end, bool isMatch)
        {
            switch (behavior)
            {
                case SplitBehavior.Isolated:
                    Emit(start, end);
                    break;
                case SplitBehavior.Removed:
                    if (!isMatch)
                        Emit(start, end);
                    break;
                case SplitBehavior.MergedWithPrevious:
                    if (isMatch && previousIsMatch != true && pendingStart >= 0)
                        pendingEnd = end;
                    else
                        Replace(start, end);
                    break;
                case SplitBehavior.MergedWithNext:
                    if (previousIsMatch == true && !isMatch)
                        pendingEnd = end;
                    else
                        Replace(start, end);
                    break;
                case SplitBehavior.Contiguous:
                    if (previousIsMatch == isMatch)
                        pendingEnd = end;
                    else
                        Replace(start, end);
                    break;
            }
            previousIsMatch = isMatch;
        }

        void Replace(int start, int end)
        {
            Flush();
            pendingStart = start;
            pendingEnd = end;
        }

        void Flush()
        {
            if (pendingStart >= 0)
                Emit(pendingStart, pendingEnd);
            pendingStart = -1;
        }

        void Emit(int start, int end)
        {
            if (end > start)
                output.Add(piece.Slice(start, end - start));
        }
    }

    private static string EscapeLiteral(string literal) =>
        System.Text.RegularExpressions.Regex.Escape(literal);
}

/// <summary>
/// The ByteLevel pre-tokenizer's splitting part: optional prefix space and optional GPT-2 word regex.
/// Its byte-to-character mapping is folded into <see cref="BytePairModel"/>.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Lazy<SplitPreTokenizer> Gpt2Split =
        new(() => new SplitPreTokenizer(new CodePointRegex(Gpt2Pattern, "the ByteLevel pre-tokenizer"), SplitBehavior.Isolated, invert: false));

    public override void Split(List<TextPiece> input, List<TextPiece> output, List<(int Start, int Length)> matchScratch)
    {
        if (addPrefixSpace)
        {
            for (int i = 0; i < input.Count; i++)
            {
                if (input[i].Span[0] != ' ')
                    input[i] = new TextPiece(" " + input[i].Span.ToString());
            }
        }
        if (useRegex)
            Gpt2Split.Value.Split(input, output, matchScratch);
        else
            output.AddRange(input);
    }
}
