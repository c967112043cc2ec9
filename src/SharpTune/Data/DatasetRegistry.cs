using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>The datasets a <c>dataset_dir</c> registers in its <c>dataset_info.json</c> (LLaMA-Factory's format).</summary>
public sealed class DatasetRegistry
{
    public const string FileName = "dataset_info.json";

    private readonly Dictionary<string, JsonElement> entries;
    private readonly string path;

    private DatasetRegistry(string datasetDir, string path, Dictionary<string, JsonElement> entries)
    {
        DatasetDir = datasetDir;
        this.path = path;
        this.entries = entries;
    }

    public string DatasetDir { get; }

    /// <summary>Registered names, in file order.</summary>
    public IReadOnlyList<string> Names => entries.Keys.ToList();

    /// <exception cref="FileNotFoundException">No dataset_info.json in the folder.</exception>
    /// <exception cref="InvalidDataException">It is not valid JSON or not an object.</exception>
    public static DatasetRegistry Load(string datasetDir)
    {
        string path = Path.Combine(datasetDir, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"dataset_dir '{datasetDir}' has no {FileName}", path);
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            using var doc = JsonDocument.Parse(bytes.AsMemory(DatasetFiles.BomLength(bytes)));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: must be a JSON object of dataset entries, got {JsonKinds.Describe(doc.RootElement)}");
            var entries = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
                entries[property.Name] = property.Value.Clone();
            return new DatasetRegistry(datasetDir, path, entries);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {JsonKinds.Reason(e)}", e);
        }
    }

    /// <exception cref="KeyNotFoundException">The name is not registered.</exception>
    /// <exception cref="InvalidDataException">Its entry is malformed or unusable (see <see cref="DatasetEntry.Parse"/>).</exception>
    public DatasetEntry Get(string name)
    {
        if (!entries.TryGetValue(name, out var info))
        {
            var known = entries.Keys.Take(12).ToList();
            string list = string.Join(", ", known) + (entries.Count > known.Count ? $", … ({entries.Count} in all)" : "");
            throw new KeyNotFoundException($"dataset '{name}' is not defined in {path} (it defines: {list})");
        }
        return DatasetEntry.Parse(name, info, path);
    }
}
