using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft;

/// <summary>
/// adapter_config.json as every method reads and writes it: the parse with errors naming the file and field, PEFT's
/// module-name lists, and the atomic write in the layout PEFT's save_pretrained leaves.
/// </summary>
public static class PeftConfigFile
{
    /// <summary>
    /// Parses the folder's adapter_config.json and hands its root object to <paramref name="read"/> with the file's
    /// path and a reader whose errors are <see cref="InvalidDataException"/>s naming the file and field.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not valid UTF-8 or JSON, or not an object.</exception>
    internal static T Read<T>(string adapterDirectory, Func<JsonElement, string, JsonConfigReader, T> read)
    {
        string path = Path.Combine(adapterDirectory, PeftAdapterFolders.ConfigFileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{adapterDirectory}: {PeftAdapterFolders.ConfigFileName} is missing; is this a PEFT adapter folder?", path);
        var bytes = Utf8Validation.ReadJsonFile(path, message => new InvalidDataException(message));
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: invalid JSON ({e.Message})", e);
        }
        using (doc)
        {
            JsonElement json = doc.RootElement;
            if (json.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: not a JSON object");
            return read(json, path, new JsonConfigReader(json, path, message => new InvalidDataException(message)));
        }
    }

    /// <summary>A list of module names (target_modules, modules_to_save, …); absent or null is empty.</summary>
    /// <exception cref="InvalidDataException">A regular expression (PEFT's string form) or anything but a list of names.</exception>
    public static string[] ReadNames(JsonElement json, string path, string field)
    {
        if (!json.TryGetProperty(field, out var node)) return [];
        return node.ValueKind switch
        {
            JsonValueKind.Null => [],
            JsonValueKind.Array => node.EnumerateArray().Select(n => n.ValueKind == JsonValueKind.String
                ? n.GetString()!
                : throw new InvalidDataException($"{path}: '{field}' holds {JsonKinds.Describe(n)}, not a module name")).ToArray(),
            JsonValueKind.String =>
                throw new InvalidDataException($"{path}: '{field}' is a regular expression; only a list of module names is supported"),
            _ => throw new InvalidDataException($"{path}: '{field}' must be a list of module names"),
        };
    }

    /// <summary>PEFT's match of a name in a module list against a module path: the whole path or its last dotted parts.</summary>
    public static bool ModuleMatches(string modulePath, string name) =>
        modulePath == name || modulePath.EndsWith("." + name, StringComparison.Ordinal);

    /// <summary>A list of names as PEFT writes it, null when empty.</summary>
    public static JsonArray? Names(IReadOnlyList<string> names) =>
        names.Count == 0 ? null : new JsonArray(names.Select(m => (JsonNode?)m).ToArray());

    /// <summary>Writes adapter_config.json atomically, indented, with its fields as given (PEFT sorts them).</summary>
    public static void Write(string adapterDirectory, JsonObject json)
    {
        Directory.CreateDirectory(adapterDirectory);
        AtomicFile.WriteText(Path.Combine(adapterDirectory, PeftAdapterFolders.ConfigFileName),
            json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }
}
