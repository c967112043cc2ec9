using System.Globalization;

namespace SharpTune.Foundation;

/// <summary>
/// The few Python built-ins the reference metrics lean on, reproduced exactly: what <c>str.isspace</c> and
/// <c>str.split()</c> call whitespace, <c>list(str)</c> (code points, not UTF-16 units), <c>math.fsum</c> and
/// <c>str(timedelta)</c>; <c>round</c> is <see cref="PythonJson.Round"/>.
/// </summary>
public static class PythonText
{
    /// <summary>Python's <c>str.isspace</c> for one UTF-16 unit: .NET's whitespace plus U+001C..U+001F.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\u001C' && c <= '\u001F');

    /// <summary><c>str.split()</c> without arguments: runs of whitespace separate, no empty pieces.</summary>
    public static List<string> SplitWhitespace(string text)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && IsSpace(text[i])) i++;
            int start = i;
            while (i < text.Length && !IsSpace(text[i])) i++;
            if (i > start) parts.Add(text[start..i]);
        }
        return parts;
    }

    /// <summary><c>str.rstrip()</c>.</summary>
    public static string RStrip(string text)
    {
        int end = text.Length;
        while (end > 0 && IsSpace(text[end - 1])) end--;
        return text[..end];
    }

    /// <summary><c>str.lstrip()</c>.</summary>
    public static string LStrip(string text)
    {
        int start = 0;
        while (start < text.Length && IsSpace(text[start])) start++;
        return text[start..];
    }

    /// <summary><c>str.strip()</c>.</summary>
    public static string Strip(string text) => LStrip(RStrip(text));

    /// <summary><c>list(text)</c>: the code points, a surrogate pair counting as one (an unpaired surrogate as itself).</summary>
    public static int[] CodePoints(string text)
    {
        var points = new List<int>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                points.Add(char.ConvertToUtf32(text[i], text[i + 1]));
                i++;
            }
            else points.Add(text[i]);
        }
        return points.ToArray();
    }

    /// <summary><c>math.fsum</c>: the correctly rounded sum (Shewchuk's partials, as CPython does).</summary>
    public static double FSum(IEnumerable<double> values)
    {
        var partials = new List<double>();
        foreach (double value in values)
        {
            double x = value;
            int kept = 0;
            for (int j = 0; j < partials.Count; j++)
            {
                double y = partials[j];
                if (Math.Abs(x) < Math.Abs(y)) (x, y) = (y, x);
                double hi = x + y;
                double lo = y - (hi - x);
                if (lo != 0.0) partials[kept++] = lo;
                x = hi;
            }
            partials.RemoveRange(kept, partials.Count - kept);
            if (x != 0.0) partials.Add(x);
        }
        if (partials.Count == 0) return 0.0;
        int n = partials.Count - 1;
        double sum = partials[n];
        double low = 0.0;
        while (n > 0)
        {
            double x = sum;
            double y = partials[--n];
            sum = x + y;
            double yr = sum - x;
            low = y - yr;
            if (low != 0.0) break;
        }
        // CPython's half-way correction: a remaining partial of the same sign as the rounding error rounds away.
        if (n > 0 && ((low < 0.0 && partials[n - 1] < 0.0) || (low > 0.0 && partials[n - 1] > 0.0)))
        {
            double y = low * 2.0;
            double x = sum + y;
            if (y == x - sum) sum = x;
        }
        return sum;
    }

    /// <summary>str(timedelta(seconds=int(s))): "H:MM:SS", or "D day(s), H:MM:SS".</summary>
    public static string Timedelta(double seconds)
    {
        long total = (long)seconds;
        long days = Math.DivRem(total, 86400, out long rest);
        long hours = Math.DivRem(rest, 3600, out rest);
        long minutes = Math.DivRem(rest, 60, out long secs);
        string clock = string.Create(CultureInfo.InvariantCulture, $"{hours}:{minutes:00}:{secs:00}");
        return days == 0 ? clock : string.Create(CultureInfo.InvariantCulture, $"{days} day{(days == 1 ? "" : "s")}, {clock}");
    }
}
