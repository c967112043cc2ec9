using System.Text;

namespace SharpTune.IO;

/// <summary>
/// Values taken from user files (dataset records, configs, tokenizer and checkpoint files) as they appear in error
/// messages: quoted, on one line, and cut short, so a message stays readable and echoes little of a file that may
/// hold private data.
/// </summary>
public static class MessageText
{
    /// <summary>How much of a value a message shows by default.</summary>
    public const int DefaultMaxChars = 60;

    /// <summary>
    /// <c>'value'</c>, or for a longer value its first <paramref name="maxChars"/> characters marked as cut:
    /// <c>'first characters…' (1234 chars)</c>. Control characters are escaped.
    /// </summary>
    public static string Quote(string value, int maxChars = DefaultMaxChars) =>
        value.Length <= maxChars ? "'" + OneLine(value) + "'" : "'" + Shorten(value, maxChars) + $"' ({value.Length} chars)";

    /// <summary>
    /// The value on one line when it has at most <paramref name="maxChars"/> characters, else its first
    /// <paramref name="maxChars"/> (no surrogate pair split) followed by '…'.
    /// </summary>
    public static string Shorten(string value, int maxChars = DefaultMaxChars)
    {
        if (value.Length <= maxChars) return OneLine(value);
        int cut = char.IsHighSurrogate(value[maxChars - 1]) ? maxChars - 1 : maxChars;
        return OneLine(value[..cut]) + "…";
    }

    /// <summary>The text with control characters (newlines included) written as <c>\uXXXX</c>.</summary>
    public static string OneLine(string text)
    {
        if (!text.Any(char.IsControl)) return text;
        var sb = new StringBuilder(text.Length + 8);
        foreach (char c in text)
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c);
        return sb.ToString();
    }
}
