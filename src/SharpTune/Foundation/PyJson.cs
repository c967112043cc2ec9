using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace SharpTune.Foundation;

/// <summary>
/// Python's <c>json.dumps(value, ensure_ascii=False)</c> over parsed JSON: what transformers' Jinja <c>tojson</c>
/// and LLaMA-Factory's formatters write. Separators are <c>", "</c> and <c>": "</c> (<c>","</c> plus newlines when
/// indented), keys keep their order, non-ASCII is written raw, and numbers follow Python's int/float split: an
/// integer literal stays an integer, any literal with a fraction or exponent becomes a float printed by
/// <c>repr</c> (<c>1.50</c> → <c>1.5</c>, <c>1e3</c> → <c>1000.0</c>).
/// </summary>
internal static class PyJson
{
    public static string Dumps(JsonElement value, int? indent = null)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent, 0);
        return sb.ToString();
    }

    public static string DumpsString(string value)
    {
        var sb = new StringBuilder();
        WriteString(sb, value);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonElement value, int? indent, int depth)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                WriteObject(sb, value, indent, depth);
                break;
            case JsonValueKind.Array:
                WriteArray(sb, value, indent, depth);
                break;
            case JsonValueKind.String:
                WriteString(sb, value.GetString()!);
                break;
            case JsonValueKind.Number:
                sb.Append(Number(value.GetRawText()));
                break;
            case JsonValueKind.True:
                sb.Append("true");
                break;
            case JsonValueKind.False:
                sb.Append("false");
                break;
            default:
                sb.Append("null");
                break;
        }
    }

    private static void WriteObject(StringBuilder sb, JsonElement value, int? indent, int depth)
    {
        // A Python dict keeps the first position of a repeated key and the last value given for it.
        var keys = new List<string>();
        var values = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            if (!values.ContainsKey(property.Name))
                keys.Add(property.Name);
            values[property.Name] = property.Value;
        }

        if (keys.Count == 0)
        {
            sb.Append("{}");
            return;
        }

        sb.Append('{');
        for (var i = 0; i < keys.Count; i++)
        {
            Separator(sb, i, indent, depth + 1);
            WriteString(sb, keys[i]);
            sb.Append(": ");
            Write(sb, values[keys[i]], indent, depth + 1);
        }
        Close(sb, indent, depth);
        sb.Append('}');
    }

    private static void WriteArray(StringBuilder sb, JsonElement value, int? indent, int depth)
    {
        if (value.GetArrayLength() == 0)
        {
            sb.Append("[]");
            return;
        }

        sb.Append('[');
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            Separator(sb, i++, indent, depth + 1);
            Write(sb, item, indent, depth + 1);
        }
        Close(sb, indent, depth);
        sb.Append(']');
    }

    private static void Separator(StringBuilder sb, int index, int? indent, int depth)
    {
        if (indent is { } n)
        {
            if (index > 0)
                sb.Append(',');
            sb.Append('\n').Append(' ', n * depth);
        }
        else if (index > 0)
        {
            sb.Append(", ");
        }
    }

    private static void Close(StringBuilder sb, int? indent, int depth)
    {
        if (indent is { } n)
            sb.Append('\n').Append(' ', n * depth);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    private static string Number(string literal)
    {
        if (literal.AsSpan().IndexOfAny('.', 'e', 'E') < 0)
            return BigInteger.Parse(literal, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture);
        return FloatRepr(double.Parse(literal, NumberStyles.Float, CultureInfo.InvariantCulture));
    }

    /// <summary>Python's <c>float.__repr__</c>: shortest round-trip digits, positional for 1e-4 ≤ |x| &lt; 1e16.</summary>
    internal static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
            return "NaN";
        if (double.IsInfinity(d))
            return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0)
            return double.IsNegative(d) ? "-0.0" : "0.0";

        var sign = d < 0 ? "-" : "";
        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var ePos = r.IndexOfAny(['E', 'e']);
        if (ePos >= 0)
        {
            exponent = int.Parse(r.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..ePos];
        }

        var dot = r.IndexOf('.');
        var intPart = dot >= 0 ? r[..dot] : r;
        var fracPart = dot >= 0 ? r[(dot + 1)..] : "";
        var digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - (intPart + fracPart).TrimStart('0').Length;
        // decpt: the value is 0.<digits> × 10^decpt.
        var decpt = intPart.Length + exponent - leadingZeros;
        digits = digits.TrimEnd('0');

        if (decpt > -4 && decpt <= 16)
        {
            if (decpt <= 0)
                return sign + "0." + new string('0', -decpt) + digits;
            if (decpt >= digits.Length)
                return sign + digits + new string('0', decpt - digits.Length) + ".0";
            return sign + digits[..decpt] + "." + digits[decpt..];
        }

        var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
        var e = decpt - 1;
        return sign + mantissa + "e" + (e < 0 ? "-" : "+") + Math.Abs(e).ToString("00", CultureInfo.InvariantCulture);
    }
}
