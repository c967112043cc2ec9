using System.Text;

namespace SharpTune.Api;

/// <summary>
/// Cuts generated text at the first of the request's stop strings (OpenAI's <c>stop</c>; the stop string itself is
/// not returned). Text that could still become a stop string is held back until the next piece decides it, so a
/// streamed reply never shows the beginning of a stop string it later removes.
/// </summary>
public sealed class StopStringFilter(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _pending = new();

    /// <summary>True once a stop string was seen; later pieces are dropped.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a piece of generated text and returns the text that is now safe to release.</summary>
    public string Push(string piece)
    {
        if (Stopped || piece.Length == 0) return "";
        _pending.Append(piece);
        string text = _pending.ToString();
        int cut = -1;
        foreach (string stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return text[..cut];
        }
        int keep = HeldBack(text);
        _pending.Clear().Append(text, text.Length - keep, keep);
        return text[..^keep];
    }

    /// <summary>The held-back text at the end of generation (no stop string followed it).</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _pending.ToString();
        _pending.Clear();
        return rest;
    }

    /// <summary>The length of the longest end of <paramref name="text"/> that begins some stop string.</summary>
    private int HeldBack(string text)
    {
        int longest = 0;
        foreach (string stop in stops)
            for (int n = Math.Min(stop.Length - 1, text.Length); n > longest; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(stop.AsSpan(0, n)))
                {
                    longest = n;
                    break;
                }
        return longest;
    }
}
