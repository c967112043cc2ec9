using System.Globalization;
using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// Translates the Oniguruma (Ruby syntax) patterns that Hugging Face tokenizers compiles into .NET regex syntax,
/// rewriting the constructs whose meaning differs between the two engines and rejecting those it cannot express.
/// Astral-plane characters are handled separately by <see cref="CodePointRegex"/>.
/// </summary>
internal static class OnigurumaPattern
{
    /// <summary>
    /// Oniguruma's \w (Unicode Word: Alphabetic, marks, decimal digits, connector punctuation, joiners) as .NET
    /// class members; .NET's own \w leaves out Mc, Me and Nl.
    /// </summary>
    private const string WordClassMembers = @"\p{L}\p{M}\p{Nl}\p{Nd}\p{Pc}\u200C\u200D";

    /// <summary>
    /// Under case-insensitive matching Oniguruma applies Unicode case folding, where U+017F (long s) folds to 's';
    /// .NET's case equivalence table omits that pair (it does include U+212A Kelvin for 'k').
    /// </summary>
    private const char LongS = '\u017F';

    public static string ToDotNet(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var groupStarts = new Stack<(int Start, bool IgnoreCase)>();
        bool ignoreCase = false;
        int lastAtomStart = -1;
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            switch (c)
            {
                case '\\':
                    lastAtomStart = output.Length;
                    i = TranslateEscape(pattern, i, output, insideClass: false);
                    break;
                case '[':
                    lastAtomStart = output.Length;
                    i = TranslateClass(pattern, i, output, ignoreCase);
                    break;
                case '(':
                    i = TranslateGroupOpening(pattern, i, output, groupStarts, ref ignoreCase);
                    lastAtomStart = -1;
                    break;
                case ')':
                    if (groupStarts.Count == 0)
                        throw Unsupported(pattern, "unbalanced ')'");
                    (lastAtomStart, ignoreCase) = groupStarts.Pop();
                    output.Append(')');
                    i++;
                    break;
                case '*' or '+' or '?':
                    output.Append(c);
                    i++;
                    if (i < pattern.Length && pattern[i] == '+')
                    {
                        // Possessive quantifier: .NET spells it as an atomic group around the quantified atom.
                        if (lastAtomStart < 0)
                            throw Unsupported(pattern, "possessive quantifier without an atom");
                        output.Insert(lastAtomStart, "(?>").Append(')');
                        i++;
                    }
                    else if (i < pattern.Length && pattern[i] == '?')
                    {
                        output.Append('?');
                        i++;
                    }
                    lastAtomStart = -1;
                    break;
                case '{':
                    int close = pattern.IndexOf('}', i);
                    if (close < 0)
                        throw Unsupported(pattern, "unterminated interval");
                    output.Append(pattern, i, close - i + 1);
                    i = close + 1;
                    lastAtomStart = -1;
                    break;
                default:
                    if (char.IsSurrogate(c))
                        throw Unsupported(pattern, "literal characters outside the Basic Multilingual Plane");
                    lastAtomStart = output.Length;
                    // Ruby's ^ and $ always match at line boundaries, .NET's only in multiline mode.
                    if (c is '^' or '$')
                        output.Append("(?m:").Append(c).Append(')');
                    else if (ignoreCase && c is 's' or 'S')
                        output.Append("[sS").Append(LongS).Append(']');
                    else
                        output.Append(c);
                    i++;
                    break;
            }
        }
        if (groupStarts.Count != 0)
            throw Unsupported(pattern, "unbalanced '('");
        return output.ToString();
    }

    private static int TranslateGroupOpening(string pattern, int i, StringBuilder output,
        Stack<(int Start, bool IgnoreCase)> groupStarts, ref bool ignoreCase)
    {
        int groupStart = output.Length;
        if (i + 1 >= pattern.Length || pattern[i + 1] != '?')
        {
            groupStarts.Push((groupStart, ignoreCase));
            output.Append('(');
            return i + 1;
        }

        // Inline options: (?imx-imx) changes the enclosing group, (?imx-imx:...) only its own body.
        int j = i + 2;
        bool enable = true;
        bool scopedIgnoreCase = ignoreCase;
        var enabledOptions = new StringBuilder();
        var disabledOptions = new StringBuilder();
        while (j < pattern.Length && pattern[j] is 'i' or 'm' or 'x' or '-')
        {
            char option = pattern[j++];
            if (option == '-')
            {
                enable = false;
                continue;
            }
            if (option == 'i')
                scopedIgnoreCase = enable;
            // Ruby's (?m) is "dot matches newline", which .NET calls (?s).
            (enable ? enabledOptions : disabledOptions).Append(option == 'm' ? 's' : option);
        }
        string dotNetOptions = disabledOptions.Length == 0 ? enabledOptions.ToString() : $"{enabledOptions}-{disabledOptions}";
        if (j > i + 2 && j < pattern.Length && pattern[j] == ')')
        {
            output.Append("(?").Append(dotNetOptions).Append(')');
            ignoreCase = scopedIgnoreCase;
            return j + 1;
        }
        if (j > i + 2 && j < pattern.Length && pattern[j] == ':')
        {
            groupStarts.Push((groupStart, ignoreCase));
            output.Append("(?").Append(dotNetOptions).Append(':');
            ignoreCase = scopedIgnoreCase;
            return j + 1;
        }
        if (j > i + 2)
            throw Unsupported(pattern, "malformed inline options");

        // Non-capturing, lookaround, atomic and named groups share their syntax with .NET.
        string[] openers = ["(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?<", "(?'"];
        foreach (string opener in openers)
        {
            if (string.CompareOrdinal(pattern, i, opener, 0, opener.Length) == 0)
            {
                groupStarts.Push((groupStart, ignoreCase));
                output.Append(opener);
                return i + opener.Length;
            }
        }
        throw Unsupported(pattern, "group construct");
    }

    /// <summary>Copies a bracket expression, translating escapes and adding case-fold equivalents .NET misses.</summary>
    private static int TranslateClass(string pattern, int i, StringBuilder output, bool ignoreCase)
    {
        output.Append('[');
        i++;
        if (i < pattern.Length && pattern[i] == '^')
        {
            output.Append('^');
            i++;
        }
        bool coversS = false;
        bool first = true;
        while (i < pattern.Length && (pattern[i] != ']' || first))
        {
            first = false;
            char c = pattern[i];
            if (c == '[')
                throw Unsupported(pattern, "nested character classes and POSIX brackets");
            if (c == '&' && i + 1 < pattern.Length && pattern[i + 1] == '&')
                throw Unsupported(pattern, "character class intersection");
            if (char.IsSurrogate(c))
                throw Unsupported(pattern, "literal characters outside the Basic Multilingual Plane");
            if (c == '\\')
            {
                i = TranslateEscape(pattern, i, output, insideClass: true);
                continue;
            }
            char low = c, high = c;
            output.Append(c);
            i++;
            if (i + 1 < pattern.Length && pattern[i] == '-' && pattern[i + 1] != ']' && pattern[i + 1] != '\\')
            {
                high = pattern[i + 1];
                output.Append('-').Append(high);
                i += 2;
            }
            coversS |= low <= 's' && high >= 's' || low <= 'S' && high >= 'S';
        }
        if (i >= pattern.Length)
            throw Unsupported(pattern, "unterminated character class");
        if (ignoreCase && coversS)
            output.Append(LongS);
        output.Append(']');
        return i + 1;
    }

    private static int TranslateEscape(string pattern, int i, StringBuilder output, bool insideClass)
    {
        if (i + 1 >= pattern.Length)
            throw Unsupported(pattern, "trailing backslash");
        char escaped = pattern[i + 1];
        switch (escaped)
        {
            case 'p' or 'P':
                return TranslateProperty(pattern, i, output);
            case 'h':
                output.Append(insideClass ? "0-9a-fA-F" : "[0-9a-fA-F]");
                return i + 2;
            case 'H' when !insideClass:
                output.Append("[^0-9a-fA-F]");
                return i + 2;
            case 'w':
                output.Append(insideClass ? WordClassMembers : "[" + WordClassMembers + "]");
                return i + 2;
            case 'W' when !insideClass:
                output.Append("[^").Append(WordClassMembers).Append(']');
                return i + 2;
            case 'x' when i + 2 < pattern.Length && pattern[i + 2] == '{':
                int close = pattern.IndexOf('}', i);
                int codePoint = int.Parse(pattern.AsSpan(i + 3, close - i - 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (codePoint > 0xFFFF)
                    throw Unsupported(pattern, "code points outside the Basic Multilingual Plane");
                output.Append(@"\u").Append(codePoint.ToString("X4", CultureInfo.InvariantCulture));
                return close + 1;
            case 'H' or 'W' or 'R' or 'X' or 'K' or 'g' or 'k' or 'O' or 'N' or 'y' or 'Y':
                throw Unsupported(pattern, "\\" + escaped);
            default:
                output.Append('\\').Append(escaped);
                return i + 2;
        }
    }

    /// <summary>
    /// \p{X}, \P{X} and Oniguruma's \p{^X}. Only general categories are accepted: they mean the same in both
    /// engines, whereas script and binary property names do not exist in .NET.
    /// </summary>
    private static int TranslateProperty(string pattern, int i, StringBuilder output)
    {
        bool negated = pattern[i + 1] == 'P';
        if (i + 2 >= pattern.Length || pattern[i + 2] != '{')
            throw Unsupported(pattern, "\\p without braces");
        int close = pattern.IndexOf('}', i);
        if (close < 0)
            throw Unsupported(pattern, "unterminated \\p{");
        string name = pattern.Substring(i + 3, close - i - 3);
        if (name.StartsWith('^'))
        {
            negated = !negated;
            name = name[1..];
        }
        if (!IsGeneralCategory(name))
            throw Unsupported(pattern, $"Unicode property \\p{{{name}}}");
        output.Append(negated ? @"\P{" : @"\p{").Append(name).Append('}');
        return close + 1;
    }

    private static bool IsGeneralCategory(string name) => name is
        "L" or "Lu" or "Ll" or "Lt" or "Lm" or "Lo" or "M" or "Mn" or "Mc" or "Me" or "N" or "Nd" or "Nl" or "No"
        or "P" or "Pc" or "Pd" or "Ps" or "Pe" or "Pi" or "Pf" or "Po" or "S" or "Sm" or "Sc" or "Sk" or "So"
        or "Z" or "Zs" or "Zl" or "Zp" or "C" or "Cc" or "Cf" or "Cs" or "Co" or "Cn";

    private static NotSupportedException Unsupported(string pattern, string construct) =>
        new($"Pre-tokenizer regex uses {construct}, which this tokenizer cannot translate to .NET: {pattern}");
}
