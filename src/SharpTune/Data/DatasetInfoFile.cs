using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Data;

/// <summary>
/// Writes one entry of a <c>dataset_info.json</c> (<see cref="DatasetRegistry.FileName"/>): added, or replacing the
/// entry of that name, every other entry kept in its place; the file is written atomically, so a crash leaves the old
/// file or the new one. The entry is first read back by <see cref="DatasetEntry.Parse"/>, so a written entry is one
/// training can load.
/// </summary>
public static class DatasetInfoFile
{
    private static readonly JsonSerializerOptions Layout = new()
    {
        WriteIndented = true, IndentSize = 2, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The dataset_info.json a --dataset-info argument names: the file itself, or the folder holding it.</summary>
    public static string PathFor(string fileOrFolder) =>
        Directory.Exists(fileOrFolder) ? Path.Combine(fileOrFolder, DatasetRegistry.FileName) : fileOrFolder;

    /// <summary>
    /// The <c>file_name</c> of <paramref name="dataFile"/> as dataset_info.json at <paramref name="infoPath"/> names
    /// it: relative to its folder, '/'-separated (LLaMA-Factory joins it to dataset_dir).
    /// </summary>
    public static string FileNameFor(string infoPath, string dataFile) =>
        Path.GetRelativePath(Path.GetDirectoryName(Path.GetFullPath(infoPath))!, Path.GetFullPath(dataFile)).Replace('\\', '/');

    /// <summary>The file's text with <paramref name="entry"/> under <paramref name="name"/>; the file is not written.</summary>
    /// <exception cref="InvalidDataException">The existing file is not a JSON object, or the entry is not one LLaMA-Factory's loader accepts.</exception>
    public static string WithEntry(string infoPath, string name, JsonObject entry)
    {
        using (var check = JsonDocument.Parse(entry.ToJsonString()))
            DatasetEntry.Parse(name, check.RootElement, infoPath);
        JsonObject root;
        if (File.Exists(infoPath))
        {
            try
            {
                root = JsonNode.Parse(File.ReadAllText(infoPath)) as JsonObject
                    ?? throw new InvalidDataException($"{infoPath}: dataset_info.json must be a JSON object of dataset entries");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{infoPath}: invalid JSON at line {e.LineNumber + 1}: {JsonKinds.Reason(e)}", e);
            }
        }
        else root = [];
        root[name] = entry;
        return root.ToJsonString(Layout) + "\n";
    }

    /// <summary>Writes <see cref="WithEntry"/>'s text atomically.</summary>
    public static void Write(string infoPath, string text)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(infoPath)) is { } folder) Directory.CreateDirectory(folder);
        AtomicFile.WriteText(infoPath, text);
    }
}
