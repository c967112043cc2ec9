using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using SharpTune.Engine;

namespace SharpTune.IO.Safetensors;

/// <summary>
/// Parses and fully validates a safetensors header. The rules follow the format specification and the reference
/// Rust reader (safetensors 0.4.x <c>SafeTensors::read_metadata</c>):
/// <list type="bullet">
/// <item>8-byte little-endian header length N with 2 ≤ N ≤ 100,000,000 and 8 + N ≤ file size;</item>
/// <item>the header is UTF-8 JSON starting with '{' (trailing space padding is allowed);</item>
/// <item><c>__metadata__</c> is optional and maps strings to strings;</item>
/// <item>every tensor's byte span equals product(shape) × dtype size;</item>
/// <item>the tensors, sorted by offset, tile the data section exactly: no overlap, no hole, and the last one ends at
/// the end of the file. The spec forbids holes ("the byte buffer needs to be entirely indexed") so a file cannot
/// smuggle extra content, and the Rust reader rejects trailing bytes (MetadataIncompleteBuffer); we do the same.</item>
/// </list>
/// Beyond the Rust reader we also reject duplicate JSON keys (serde silently keeps the last, which makes a file mean
/// two different things to two readers). Unknown fields inside a tensor entry are ignored, as serde does.
/// </summary>
internal static class SafetensorsHeader
{
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Safetensors dtypes that exist in the format but that SharpTune does not load, so that an error can
    /// say "unsupported" rather than "unknown".</summary>
    private static readonly HashSet<string> OtherFormatDtypes =
    [
        "BOOL", "F64", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
    ];

    /// <summary>Reads the 8-byte length and checks it against the file size before anything else is read.</summary>
    public static long ReadHeaderLength(string path, ReadOnlySpan<byte> first8, long fileLength)
    {
        if (fileLength < 8)
            throw Error(path, null, $"file is {fileLength} bytes, shorter than the 8-byte header length field");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(first8);
        if (n < 2)
            throw Error(path, null, $"header length {n} is too small (the shortest header, '{{}}', is 2 bytes)");
        if (n > MaxHeaderBytes)
            throw Error(path, null, $"header length {n} exceeds the {MaxHeaderBytes}-byte limit");
        if ((long)n > fileLength - 8)
            throw Error(path, null, $"header length {n} is larger than the {fileLength - 8} bytes after the length field (truncated file?)");
        return (long)n;
    }

    public static (Dictionary<string, string> Metadata, List<TensorInfo> Tensors) Parse(
        string path, byte[] header, long dataLength)
    {
        if (header[0] != (byte)'{')
            throw Error(path, null, $"header does not start with '{{' (first byte 0x{header[0]:x2})");
        if (!Utf8.IsValid(header))
            throw Error(path, null, "header is not valid UTF-8");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Error(path, null, $"header is not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Error(path, null, $"header is a JSON {doc.RootElement.ValueKind}, not an object");

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<TensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                    throw Error(path, prop.Name == MetadataKey ? null : prop.Name, $"key {SafetensorsFormatException.Quote(prop.Name)} appears twice in the header");
                if (prop.Name == MetadataKey)
                    ParseMetadata(path, prop.Value, metadata);
                else
                    tensors.Add(ParseTensor(path, prop.Name, prop.Value, dataLength));
            }
            CheckLayout(path, tensors, dataLength);
            return (metadata, tensors);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        // serde reads a JSON null as "no metadata", so accept it the same way.
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw Error(path, null, $"__metadata__ is a JSON {value.ValueKind}, not an object of strings");
        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw Error(path, null, $"__metadata__ entry {SafetensorsFormatException.Quote(entry.Name)} is a JSON {entry.Value.ValueKind}, not a string");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw Error(path, null, $"__metadata__ key {SafetensorsFormatException.Quote(entry.Name)} appears twice");
        }
    }

    private static TensorInfo ParseTensor(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Error(path, name, $"entry is a JSON {value.ValueKind}, not an object with dtype, shape and data_offsets");

        if (!value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Error(path, name, "missing or non-string 'dtype'");
        string dtypeName = dtypeElement.GetString()!;
        if (!DTypeInfo.TryParseSafetensorsName(dtypeName, out DType dtype))
        {
            string supported = string.Join(", ", Enum.GetValues<DType>().Select(DTypeInfo.SafetensorsName));
            throw OtherFormatDtypes.Contains(dtypeName)
                ? Error(path, name, $"dtype {dtypeName} is not supported (supported: {supported})")
                : Error(path, name, $"unknown dtype {SafetensorsFormatException.Quote(dtypeName)} (supported: {supported})");
        }

        long[] shape = ReadIntArray(path, name, value, "shape", expectedLength: null);
        long[] offsets = ReadIntArray(path, name, value, "data_offsets", expectedLength: 2);
        long begin = offsets[0], end = offsets[1];
        string shapeText = $"[{string.Join(", ", shape)}]";

        if (begin > end)
            throw Error(path, name, $"data_offsets [{begin}, {end}] begin after end");
        if (end > dataLength)
            throw Error(path, name, $"data_offsets [{begin}, {end}] end past the data section ({dataLength} bytes)");

        long elements = 1;
        foreach (long d in shape)
        {
            // Division instead of checked multiplication: the limit is the data section, not long.MaxValue.
            if (d != 0 && elements > long.MaxValue / d / DTypeInfo.SizeOf(dtype))
                throw Error(path, name, $"shape {shapeText} has more elements than any file can hold");
            elements *= d;
        }
        long expected = elements * DTypeInfo.SizeOf(dtype);
        if (end - begin != expected)
            throw Error(path, name, $"data_offsets [{begin}, {end}] span {end - begin} bytes but shape {shapeText} of {dtypeName} needs {expected}");

        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static long[] ReadIntArray(string path, string name, JsonElement entry, string key, int? expectedLength)
    {
        string what = expectedLength is int n ? $"an array of {n} non-negative integers" : "an array of non-negative integers";
        if (!entry.TryGetProperty(key, out JsonElement array) || array.ValueKind != JsonValueKind.Array)
            throw Error(path, name, $"missing '{key}' or not {what}");
        int length = array.GetArrayLength();
        if (expectedLength is int expected && length != expected)
            throw Error(path, name, $"'{key}' has {length} entries, expected {what}");
        var result = new long[length];
        int i = 0;
        foreach (JsonElement item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw Error(path, name, $"'{key}' entry {i} ({item.GetRawText()}) is not a non-negative integer");
            result[i++] = v;
        }
        return result;
    }

    /// <summary>Sorts by offset and checks the tensors tile [0, dataLength) exactly.</summary>
    private static void CheckLayout(string path, List<TensorInfo> tensors, long dataLength)
    {
        tensors.Sort((a, b) =>
        {
            int c = a.Begin.CompareTo(b.Begin);
            if (c == 0) c = a.End.CompareTo(b.End);
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });

        TensorInfo? previous = null;
        long covered = 0;
        foreach (TensorInfo t in tensors)
        {
            if (t.Begin < covered)
                throw Error(path, t.Name, $"data_offsets [{t.Begin}, {t.End}] overlap tensor {SafetensorsFormatException.Quote(previous!.Name)} [{previous.Begin}, {previous.End}]");
            if (t.Begin > covered)
                throw Error(path, t.Name, $"data_offsets [{t.Begin}, {t.End}] leave a hole of {t.Begin - covered} bytes before them " +
                    "(the format requires the tensors to cover the data section contiguously)");
            covered = t.End;
            previous = t;
        }
        if (covered != dataLength)
            throw Error(path, previous?.Name,
                $"the data section is {dataLength} bytes but the tensors end at byte {covered} (trailing bytes are not allowed)");
    }

    private static SafetensorsFormatException Error(string path, string? tensor, string detail, Exception? inner = null) =>
        new(path, tensor, detail, inner);
}
