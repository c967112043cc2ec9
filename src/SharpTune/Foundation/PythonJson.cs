using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharpTune.Foundation;

/// <summary>
/// The JSON that transformers and LLaMA-Factory write with Python's <c>json.dumps</c>: ints stay ints, floats are
/// printed by <c>repr</c> (so 3.0 stays "3.0" and 5e-05 is "5e-05"), non-finite floats are NaN/Infinity, and
/// Python's <c>round</c>. Values are null, bool, string, int, long, ulong, double, ordered objects
/// (<c>IEnumerable&lt;KeyValuePair&lt;string, object?&gt;&gt;</c>) and lists.
/// </summary>
internal static partial class PythonJson
{
    public static string Dumps(object? value, int? indent = null, bool sortKeys = false)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent, sortKeys, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, int? indent, bool sortKeys, int depth)
    {
        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case string s: sb.Append(PyJson.DumpsString(s)); break;
            case int i: sb.Append(i.ToString(CultureInfo.InvariantCulture)); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case ulong u: sb.Append(u.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(PyJson.FloatRepr(d)); break;
            case IEnumerable<KeyValuePair<string, object?>> obj:
            {
                var items = sortKeys ? obj.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : obj.ToList();
                WriteContainer(sb, '{', '}', items.Count, indent, depth, i =>
                {
                    sb.Append(PyJson.DumpsString(items[i].Key)).Append(": ");
                    Write(sb, items[i].Value, indent, sortKeys, depth + 1);
                });
                break;
            }
            case System.Collections.IEnumerable list:
            {
                var items = list.Cast<object?>().ToList();
                WriteContainer(sb, '[', ']', items.Count, indent, depth, i => Write(sb, items[i], indent, sortKeys, depth + 1));
                break;
            }
            default:
                throw new ArgumentException($"cannot write a {value.GetType().Name} as JSON");
        }
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, int? indent, int depth, Action<int> writeItem)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (indent is { } n)
            {
                if (i > 0) sb.Append(',');
                sb.Append('\n').Append(' ', n * (depth + 1));
            }
            else if (i > 0)
            {
                sb.Append(", ");
            }
            writeItem(i);
        }
        if (indent is { } m) sb.Append('\n').Append(' ', m * depth);
        sb.Append(close);
    }

    /// <summary>
    /// Python's <c>round(x, digits)</c> for digits ≥ 0: the exact binary value rounded to the nearest multiple of
    /// 10^-digits, ties to even, then the double nearest that decimal (CPython's dtoa then strtod). Scaling in
    /// doubles or decimals, or dividing the rounded integer by 10^digits, can land on the other side of a tie or
    /// one ulp off for values above 1e12.
    /// </summary>
    public static double Round(double x, int digits)
    {
        if (x == 0.0 || !double.IsFinite(x)) return x;
        long bits = BitConverter.DoubleToInt64Bits(x);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xFFFFFFFFFFFFFL;
        long mantissa = exponent == 0 ? fraction : fraction | (1L << 52);
        int power = (exponent == 0 ? 1 : exponent) - 1075;
        // |x| = mantissa * 2^power; |x| * 10^digits = num / den exactly.
        BigInteger num = mantissa * BigInteger.Pow(10, digits);
        BigInteger den = BigInteger.One;
        if (power >= 0) num <<= power; else den <<= -power;
        BigInteger quotient = BigInteger.DivRem(num, den, out BigInteger remainder);
        BigInteger twice = remainder * 2;
        if (twice > den || (twice == den && !quotient.IsEven)) quotient += 1;
        string rounded = string.Create(CultureInfo.InvariantCulture, $"{(bits < 0 ? "-" : "")}{quotient}E-{digits}");
        return double.Parse(rounded, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Parses JSON written by <see cref="Dumps"/> or by Python: objects become ordered lists of pairs, numbers with
    /// a fraction or exponent become double and the rest long (ulong when too large), NaN/Infinity are accepted.
    /// </summary>
    public static object? Parse(string json)
    {
        // System.Text.Json rejects Python's bare NaN/Infinity; they are quoted with a marker first and turned
        // back into doubles below. Keys and string values of these files never start with the marker.
        string quoted = NonFiniteLiteral().Replace(json, m => $"\"\\u0001{m.Value}\"");
        using var document = JsonDocument.Parse(quoted);
        return Convert(document.RootElement);
    }

    private const char NonFiniteMarker = '\u0001';

    [GeneratedRegex(@"(?<=[\[:,]\s*)(-?Infinity|NaN)(?=\s*[,\]}])")]
    private static partial Regex NonFiniteLiteral();

    private static object? Convert(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                return e.EnumerateObject().Select(p => new KeyValuePair<string, object?>(p.Name, Convert(p.Value))).ToList();
            case JsonValueKind.Array:
                return e.EnumerateArray().Select(Convert).ToList();
            case JsonValueKind.String:
            {
                string s = e.GetString()!;
                if (s.Length > 0 && s[0] == NonFiniteMarker)
                    return s[1..] switch { "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, _ => double.NegativeInfinity };
                return s;
            }
            case JsonValueKind.Number:
            {
                string raw = e.GetRawText();
                if (raw.AsSpan().IndexOfAny('.', 'e', 'E') >= 0) return e.GetDouble();
                if (e.TryGetInt64(out long l)) return l;
                return e.GetUInt64();
            }
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            default: return null;
        }
    }
}
