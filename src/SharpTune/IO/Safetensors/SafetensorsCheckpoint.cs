using System.Text.Json;

namespace SharpTune.IO.Safetensors;

/// <summary>
/// The weights of a Hugging Face model folder: either shards listed by <c>model.safetensors.index.json</c>, or
/// (without an index) <c>model.safetensors</c> alone when the folder has it, as transformers loads it (beside it may lie
/// files that are not the model's, such as a reward model's value_head.safetensors), else every <c>*.safetensors</c>
/// file at the folder's top level. Lookups are by tensor name across
/// all files. Opening validates everything up front: every file's header (see <see cref="SafetensorsFile"/>), and
/// for an index, that every named shard exists, that each shard holds exactly the tensors the index maps to it, and
/// that no tensor is in two files. The index's <c>metadata.total_size</c> is informational and not checked: several
/// published checkpoints carry a stale value and transformers ignores it.
/// When both an index and <c>model.safetensors</c> exist, the index wins (transformers would load
/// <c>model.safetensors</c>; <see cref="SafetensorsWriter.WriteSharded"/> never leaves both behind).
/// </summary>
public sealed unsafe class SafetensorsCheckpoint : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _fileOf;

    private SafetensorsCheckpoint(string directory, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> fileOf)
    {
        Directory = directory;
        _files = files;
        _fileOf = fileOf;
        Names = fileOf.Keys.Order(StringComparer.Ordinal).ToArray();
    }

    public string Directory { get; }

    /// <summary>The opened files, in file-name order.</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files.AsReadOnly();

    /// <summary>Every tensor name, ordinally sorted.</summary>
    public IReadOnlyList<string> Names { get; }

    public static SafetensorsCheckpoint OpenDirectory(string dir)
    {
        if (!System.IO.Directory.Exists(dir))
            throw new DirectoryNotFoundException($"model directory not found: {dir}");
        string indexPath = Path.Combine(dir, IndexFileName);
        return System.IO.File.Exists(indexPath) ? OpenIndexed(dir, indexPath) : OpenUnindexed(dir);
    }

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    /// <summary>The file holding <paramref name="name"/>.</summary>
    public SafetensorsFile File(string name) =>
        _fileOf.TryGetValue(name, out SafetensorsFile? file)
            ? file
            : throw new KeyNotFoundException($"{Directory}: no tensor {SafetensorsFormatException.Quote(name)} in any of its safetensors files");

    public TensorInfo Get(string name) => File(name).Get(name);

    public void* Pointer(string name) => File(name).Pointer(name);

    public ReadOnlySpan<byte> Bytes(string name) => File(name).Bytes(name);

    public float[] ReadFloat32(string name) => File(name).ReadFloat32(name);

    public void ReadFloat32(string name, Span<float> destination) => File(name).ReadFloat32(name, destination);

    public int[] ReadInt32(string name) => File(name).ReadInt32(name);

    public long[] ReadInt64(string name) => File(name).ReadInt64(name);

    public void Dispose()
    {
        foreach (SafetensorsFile f in _files) f.Dispose();
    }

    private static SafetensorsCheckpoint OpenIndexed(string dir, string indexPath)
    {
        Dictionary<string, string> weightMap = ReadWeightMap(indexPath);
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (string shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                string shardPath = Path.Combine(dir, shard);
                if (!System.IO.File.Exists(shardPath))
                {
                    string firstTensor = weightMap.Where(kv => kv.Value == shard).Select(kv => kv.Key).Order(StringComparer.Ordinal).First();
                    throw new SafetensorsFormatException(indexPath, firstTensor, $"mapped to shard {SafetensorsFormatException.Quote(shard)}, which does not exist in {dir}");
                }
                files.Add(SafetensorsFile.Open(shardPath));
            }

            var byShardName = files.ToDictionary(f => Path.GetFileName(f.Path), StringComparer.Ordinal);
            foreach (var (tensor, shard) in weightMap.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (!byShardName[shard].Contains(tensor))
                    throw new SafetensorsFormatException(indexPath, tensor, $"mapped to shard {SafetensorsFormatException.Quote(shard)}, which does not contain it");
            }

            var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (SafetensorsFile file in files)
            {
                string shard = Path.GetFileName(file.Path);
                foreach (TensorInfo t in file.Tensors)
                {
                    if (!weightMap.TryGetValue(t.Name, out string? mapped))
                        throw new SafetensorsFormatException(indexPath, t.Name, $"present in shard {SafetensorsFormatException.Quote(shard)} but missing from weight_map");
                    if (mapped != shard)
                        throw new SafetensorsFormatException(indexPath, t.Name, $"present in both {SafetensorsFormatException.Quote(mapped)} and {SafetensorsFormatException.Quote(shard)}");
                    fileOf.Add(t.Name, file);
                }
            }
            return new SafetensorsCheckpoint(dir, files, fileOf);
        }
        catch
        {
            foreach (SafetensorsFile f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>transformers' SAFE_WEIGHTS_NAME.</summary>
    private const string SingleFileName = "model.safetensors";

    private static SafetensorsCheckpoint OpenUnindexed(string dir)
    {
        string single = Path.Combine(dir, SingleFileName);
        // Only the exact ".safetensors" suffix: temp files from an interrupted write end in ".tmp".
        string[] paths = System.IO.File.Exists(single)
            ? [single]
            : System.IO.Directory.EnumerateFiles(dir)
                .Where(p => p.EndsWith(".safetensors", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)
                .ToArray();
        if (paths.Length == 0)
            throw new FileNotFoundException($"no *.safetensors weights in {dir}");

        var files = new List<SafetensorsFile>();
        try
        {
            var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string path in paths)
            {
                SafetensorsFile file = SafetensorsFile.Open(path);
                files.Add(file);
                foreach (TensorInfo t in file.Tensors)
                {
                    if (!fileOf.TryAdd(t.Name, file))
                        throw new SafetensorsFormatException(path, t.Name,
                            $"also present in {SafetensorsFormatException.Quote(Path.GetFileName(fileOf[t.Name].Path))} (a tensor may be in only one file)");
                }
            }
            return new SafetensorsCheckpoint(dir, files, fileOf);
        }
        catch
        {
            foreach (SafetensorsFile f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>Reads <c>weight_map</c> (tensor → shard file name). Shard names must be plain file names so an index
    /// cannot point outside its folder.</summary>
    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(System.IO.File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(indexPath, null, $"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out JsonElement map)
                || map.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(indexPath, null, "no 'weight_map' object");

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new SafetensorsFormatException(indexPath, entry.Name, $"weight_map value is a JSON {entry.Value.ValueKind}, not a shard file name");
                string shard = entry.Value.GetString()!;
                if (shard.Length == 0 || shard is "." or ".." || Path.GetFileName(shard) != shard || shard.Contains('\\'))
                    throw new SafetensorsFormatException(indexPath, entry.Name, $"weight_map names {SafetensorsFormatException.Quote(shard)}, which is not a file name in the model folder");
                if (!weightMap.TryAdd(entry.Name, shard))
                    throw new SafetensorsFormatException(indexPath, entry.Name, "appears twice in weight_map");
            }
            if (weightMap.Count == 0)
                throw new SafetensorsFormatException(indexPath, null, "weight_map is empty");
            return weightMap;
        }
    }
}
