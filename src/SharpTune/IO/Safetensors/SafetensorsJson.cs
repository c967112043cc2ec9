using System.Text;
using SharpTune.Engine;

namespace SharpTune.IO.Safetensors;

/// <summary>The exact JSON text the reference writers produce: safetensors (Rust serde_json) for file headers and
/// transformers (Python json.dumps) for shard indexes.</summary>
internal static class SafetensorsJson
{
    /// <summary>
    /// Rust's derived Ord of safetensors' Dtype enum (declaration order BOOL, U8, I8, F8_*, I16, U16, F16, BF16,
    /// I32, U32, F32, F64, I64, U64). The reference writer sorts tensors by this rank descending, then by name;
    /// it is not the byte size: F32 comes before I32 and BF16 before F16 although each pair has equal size.
    /// </summary>
    public static int RustDtypeRank(DType dtype) => dtype switch
    {
        DType.U8 => 1,
        DType.I8 => 2,
        DType.F16 => 7,
        DType.BF16 => 8,
        DType.I32 => 9,
        DType.F32 => 11,
        DType.I64 => 13,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>Rust's String ordering and Python's str ordering both compare code points, which is the order of
    /// the UTF-8 bytes (UTF-16 ordinal order differs once surrogate pairs are involved).</summary>
    public static readonly IComparer<string> CodePointOrder = Comparer<string>.Create(CompareCodePoints);

    private static int CompareCodePoints(string? a, string? b)
    {
        if (ReferenceEquals(a, b)) return 0;
        if (a is null) return -1;
        if (b is null) return 1;
        return Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b));
    }

    /// <summary>serde_json string escaping: quote, backslash and control characters only; everything else,
    /// non-ASCII included, is written as raw UTF-8.</summary>
    public static void AppendRustString(StringBuilder sb, string value) => AppendString(sb, value, escapeNonAscii: false);

    /// <summary>Python json.dumps escaping with its default ensure_ascii=True: everything outside printable ASCII
    /// becomes \uXXXX (UTF-16 code units, lowercase hex).</summary>
    public static void AppendPythonString(StringBuilder sb, string value) => AppendString(sb, value, escapeNonAscii: true);

    /// <summary>The escaping both writers share: the short escapes for quote, backslash and \b \f \n \r \t, and
    /// lowercase \uXXXX for other control characters and, with <paramref name="escapeNonAscii"/>, for DEL and
    /// everything above it.</summary>
    private static void AppendString(StringBuilder sb, string value, bool escapeNonAscii)
    {
        sb.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || (escapeNonAscii && c > 0x7E)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
