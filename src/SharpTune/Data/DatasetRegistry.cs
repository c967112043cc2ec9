using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>
/// The datasets a <c>dataset_dir</c> registers in its <c>dataset_info.json</c> (LLaMA-Factory's format). As in
/// LLaMA-Factory, a <c>file_name</c> is relative to the dataset folder and may also be absolute or lead out of it
/// with <c>..</c>; a server or web board that reads registries on behalf of others loads them confined to a root
/// instead, and then no path, absolute path or link may lead outside that root.
/// </summary>
public sealed class DatasetRegistry
{
    public const string FileName = "dataset_info.json";

    private readonly Dictionary<string, JsonElement> entries;
    private readonly string path;
    private readonly string? realRoot;

    private DatasetRegistry(string datasetDir, string path, Dictionary<string, JsonElement> entries, string? confinedTo, string? realRoot)
    {
        DatasetDir = datasetDir;
        this.path = path;
        this.entries = entries;
        ConfinedTo = confinedTo;
        this.realRoot = realRoot;
    }

    public string DatasetDir { get; }

    /// <summary>The root every data file must lie in (links resolved), or null when unconfined.</summary>
    public string? ConfinedTo { get; }

    /// <summary>Registered names, in file order.</summary>
    public IReadOnlyList<string> Names => entries.Keys.ToList();

    /// <param name="confineTo">
    /// When set, the dataset folder, its dataset_info.json and every data file must resolve (symbolic links followed)
    /// inside this folder; servers and web boards pass it so that a registry cannot read files elsewhere.
    /// </param>
    /// <exception cref="FileNotFoundException">No dataset_info.json in the folder.</exception>
    /// <exception cref="InvalidDataException">It is not valid UTF-8 or JSON or not an object, or it lies outside <paramref name="confineTo"/>.</exception>
    public static DatasetRegistry Load(string datasetDir, string? confineTo = null)
    {
        string path = Path.Combine(datasetDir, FileName);
        string? realRoot = confineTo is null ? null : ConfinedPath.RealPath(confineTo);
        if (realRoot is not null && (!ConfinedPath.IsWithin(ConfinedPath.RealPath(datasetDir), realRoot) || !ConfinedPath.IsWithin(ConfinedPath.RealPath(path), realRoot)))
            throw new InvalidDataException($"dataset_dir '{datasetDir}' is outside '{confineTo}', which this server confines data files to");
        if (!File.Exists(path))
            throw new FileNotFoundException($"dataset_dir '{datasetDir}' has no {FileName}", path);
        var bytes = Utf8Validation.ReadJsonFile(path, message => new InvalidDataException(message));
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: must be a JSON object of dataset entries, got {JsonKinds.Describe(doc.RootElement)}");
            var entries = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
                entries[property.Name] = property.Value.Clone();
            return new DatasetRegistry(datasetDir, path, entries, confineTo, realRoot);
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
            throw new KeyNotFoundException($"dataset {MessageText.Quote(name)} is not defined in {path} (it defines: {list})");
        }
        return DatasetEntry.Parse(name, info, path);
    }

    /// <summary>When confined, refuses an entry whose files (as given, links followed) are not all inside the root.</summary>
    /// <exception cref="InvalidDataException">One of <paramref name="files"/> resolves outside <see cref="ConfinedTo"/>.</exception>
    internal void CheckConfined(DatasetEntry entry, IEnumerable<string> files)
    {
        if (realRoot is null) return;
        if (files.Any(file => !ConfinedPath.IsWithin(ConfinedPath.RealPath(file), realRoot)))
            throw new InvalidDataException(
                $"{path}: dataset '{entry.Name}': file_name {MessageText.Quote(entry.Origin)} is outside the dataset folder '{ConfinedTo}', which this server confines data files to");
    }
}
