using SharpTune.IO;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using SharpTune.Engine;

namespace SharpTune.IO.Safetensors;

/// <summary>
/// Writes safetensors files byte-for-byte as safetensors 0.4.3 (<c>safetensors.torch.save_file</c>) does:
/// compact JSON header with <c>__metadata__</c> first, tensors laid out by Rust Dtype rank descending then name
/// (see <see cref="SafetensorsJson.RustDtypeRank"/>), header space-padded to a multiple of 8 so every tensor stays
/// 8-byte aligned. Metadata keys are written in code-point order (the Rust writer uses a HashMap, whose order is
/// random; sorting makes our output deterministic and matches it whenever there is one key, as with {"format":"pt"}).
/// Every file is written to a temp file in the target folder and then renamed over the target, so a crash never
/// leaves a half-written file under the real name.
/// A single tensor's data is limited to 2 GiB by <see cref="ReadOnlyMemory{T}"/>.
/// </summary>
public static partial class SafetensorsWriter
{
    /// <summary>The metadata transformers requires on every weights file (it refuses files without "format").</summary>
    public static readonly IReadOnlyDictionary<string, string> PyTorchMetadata = new Dictionary<string, string> { ["format"] = "pt" }.AsReadOnly();

    public static void Write(string path,
        IEnumerable<(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = Validate(tensors);
        list.Sort((a, b) =>
        {
            int c = SafetensorsJson.RustDtypeRank(b.DType).CompareTo(SafetensorsJson.RustDtypeRank(a.DType));
            return c != 0 ? c : SafetensorsJson.CodePointOrder.Compare(a.Name, b.Name);
        });
        byte[] header = BuildHeader(list, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var t in list) stream.Write(t.Data.Span);
        });
    }

    /// <summary>Float tensors stored as F32, or narrowed to BF16/F16 (round to nearest even).</summary>
    public static void Write(string path,
        IEnumerable<(string Name, long[] Shape, float[] Data)> tensors,
        DType storeAs = DType.F32,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(t => (t.Name, storeAs, t.Shape, EncodeFloat32(t.Data, storeAs))), metadata);

    /// <summary>Encodes floats as the little-endian bytes of F32, BF16 or F16.</summary>
    public static ReadOnlyMemory<byte> EncodeFloat32(ReadOnlySpan<float> values, DType storeAs)
    {
        switch (storeAs)
        {
            case DType.F32:
                return MemoryMarshal.AsBytes(values).ToArray();
            case DType.BF16:
            {
                var bits = new ushort[values.Length];
                BFloat16.FromSingle(values, bits);
                return MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
            }
            case DType.F16:
            {
                var halves = new Half[values.Length];
                Float16.FromSingle(values, halves);
                return MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
            }
            default:
                throw new ArgumentException($"floats can be stored as F32, BF16 or F16, not {storeAs}", nameof(storeAs));
        }
    }

    /// <summary>
    /// Saves a model folder the way transformers 4.40 <c>save_pretrained(safe_serialization=True)</c> does:
    /// tensors are packed in the order given into shards of at most <paramref name="maxShardBytes"/> (a tensor larger
    /// than that gets a shard of its own); one shard is written as <c>model.safetensors</c> with no index, several as
    /// <c>model-0000i-of-0000n.safetensors</c> plus <c>model.safetensors.index.json</c>
    /// (<c>json.dumps(index, indent=2, sort_keys=True)</c> + newline). The index is written last, after all shards.
    /// Weights files left from an earlier save that the new set does not include are then deleted (stale shards, a
    /// stale index, or a stale <c>model.safetensors</c>, which transformers would load in preference to an index).
    /// <paramref name="metadata"/> defaults to <see cref="PyTorchMetadata"/>. Returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> WriteSharded(string dir,
        IEnumerable<(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)> tensors,
        long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        metadata ??= PyTorchMetadata;
        var list = Validate(tensors);

        var shards = new List<List<Entry>> { new() };
        long shardBytes = 0, totalBytes = 0;
        foreach (var t in list)
        {
            // transformers' shard_checkpoint: start a new shard when this tensor would tip the current one over the
            // limit, but never leave a shard empty.
            if (shardBytes + t.Data.Length > maxShardBytes && shards[^1].Count > 0)
            {
                shards.Add([]);
                shardBytes = 0;
            }
            shards[^1].Add(t);
            shardBytes += t.Data.Length;
            totalBytes += t.Data.Length;
        }

        System.IO.Directory.CreateDirectory(dir);
        var written = new List<string>();
        if (shards.Count == 1)
        {
            Write(Path.Combine(dir, SingleFileName), ToTuples(shards[0]), metadata);
            written.Add(SingleFileName);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(SafetensorsJson.CodePointOrder);
            for (int i = 0; i < shards.Count; i++)
            {
                string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                Write(Path.Combine(dir, name), ToTuples(shards[i]), metadata);
                written.Add(name);
                foreach (var t in shards[i]) weightMap.Add(t.Name, name);
            }
            byte[] index = Encoding.UTF8.GetBytes(BuildIndex(totalBytes, weightMap));
            AtomicFile.Write(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName), s => s.Write(index));
            written.Add(SafetensorsCheckpoint.IndexFileName);
        }

        foreach (string path in System.IO.Directory.EnumerateFiles(dir).ToArray())
        {
            string file = Path.GetFileName(path);
            if (IsWeightsFile(file) && !written.Contains(file))
                System.IO.File.Delete(path);
        }
        return written;
    }

    /// <summary>Whether <paramref name="fileName"/> is one of the weights files <see cref="WriteSharded"/> writes.</summary>
    public static bool IsWeightsFile(string fileName) =>
        fileName == SingleFileName || fileName == SafetensorsCheckpoint.IndexFileName || ShardName().IsMatch(fileName);

    private const string SingleFileName = "model.safetensors";

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardName();

    private readonly record struct Entry(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data);

    private static IEnumerable<(string, DType, long[], ReadOnlyMemory<byte>)> ToTuples(List<Entry> entries) =>
        entries.Select(e => (e.Name, e.DType, e.Shape, e.Data));

    private static List<Entry> Validate(IEnumerable<(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)> tensors)
    {
        var list = new List<Entry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, dtype, shape, data) in tensors)
        {
            ArgumentNullException.ThrowIfNull(name);
            ArgumentNullException.ThrowIfNull(shape);
            if (name == "__metadata__")
                throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor");
            if (!names.Add(name))
                throw new ArgumentException($"tensor {SafetensorsFormatException.Quote(name)} is given twice");
            long elements = 1;
            foreach (long d in shape)
            {
                if (d < 0) throw new ArgumentException($"tensor {SafetensorsFormatException.Quote(name)}: negative dimension in shape [{string.Join(", ", shape)}]");
                elements = checked(elements * d);
            }
            long expected = checked(elements * DTypeInfo.SizeOf(dtype));
            if (data.Length != expected)
                throw new ArgumentException($"tensor {SafetensorsFormatException.Quote(name)}: {data.Length} bytes of data but shape [{string.Join(", ", shape)}] of {dtype} needs {expected}");
            list.Add(new Entry(name, dtype, (long[])shape.Clone(), data));
        }
        return list;
    }

    private static byte[] BuildHeader(List<Entry> sorted, IReadOnlyDictionary<string, string>? metadata)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        if (metadata is not null)
        {
            sb.Append("\"__metadata__\":{");
            bool firstKey = true;
            foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, SafetensorsJson.CodePointOrder))
            {
                if (!firstKey) sb.Append(',');
                firstKey = false;
                SafetensorsJson.AppendRustString(sb, key);
                sb.Append(':');
                SafetensorsJson.AppendRustString(sb, value ?? throw new ArgumentException($"metadata {SafetensorsFormatException.Quote(key)} has a null value"));
            }
            sb.Append('}');
            first = false;
        }
        long offset = 0;
        foreach (var t in sorted)
        {
            if (!first) sb.Append(',');
            first = false;
            SafetensorsJson.AppendRustString(sb, t.Name);
            sb.Append(":{\"dtype\":\"").Append(DTypeInfo.SafetensorsName(t.DType)).Append("\",\"shape\":[")
              .AppendJoin(',', t.Shape).Append("],\"data_offsets\":[").Append(offset).Append(',');
            offset += t.Data.Length;
            sb.Append(offset).Append("]}");
        }
        sb.Append('}');
        int length = Encoding.UTF8.GetByteCount(sb.ToString());
        sb.Append(' ', (8 - length % 8) % 8);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static string BuildIndex(long totalSize, SortedDictionary<string, string> weightMap)
    {
        var sb = new StringBuilder();
        sb.Append("{\n  \"metadata\": {\n    \"total_size\": ").Append(totalSize).Append("\n  },\n  \"weight_map\": {\n");
        int i = 0;
        foreach (var (tensor, shard) in weightMap)
        {
            sb.Append("    ");
            SafetensorsJson.AppendPythonString(sb, tensor);
            sb.Append(": ");
            SafetensorsJson.AppendPythonString(sb, shard);
            sb.Append(++i < weightMap.Count ? ",\n" : "\n");
        }
        sb.Append("  }\n}\n");
        return sb.ToString();
    }
}
