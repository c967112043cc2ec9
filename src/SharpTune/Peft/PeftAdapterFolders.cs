using System.Runtime.CompilerServices;
using System.Text.Json;
using SharpTune.IO;
using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Model;

namespace SharpTune.Peft;

/// <summary>
/// Reads a PEFT adapter folder by the method its adapter_config.json names in <c>peft_type</c> (LORA, IA3,
/// PROMPT_TUNING, …). Each method registers its reader from its own folder, so a new method is an addition here, not
/// an edit; this is also the reader the model layer is given (<see cref="AdapterFolders"/>).
/// </summary>
public static class PeftAdapterFolders
{
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>How the adapters library (adapter-hub) marks the configs it writes: "version": "adapters.X.Y.Z".</summary>
    public const string AdaptersLibraryVersionPrefix = "adapters.";

    private static readonly Dictionary<string, Func<string, IModelAdapter>> s_readers = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, Func<DecoderModel, string, ITrainableModel>> s_resumers = new(StringComparer.Ordinal);

#pragma warning disable CA2255 // The registration must happen before any model reads an adapter, whoever calls first.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterWithModel() => AdapterFolders.Register(Read);

    /// <summary>
    /// Installs one peft_type's method, called by its module initializer: <paramref name="reader"/> reads a folder for
    /// unmerged inference, <paramref name="resumeTraining"/> attaches a folder's tensors to a decoder as trainable
    /// tuners (continuing a run, or `check grad` on a given adapter).
    /// </summary>
    public static void Register(string peftType, Func<string, IModelAdapter> reader, Func<DecoderModel, string, ITrainableModel> resumeTraining)
    {
        lock (s_readers)
        {
            s_readers[peftType] = reader;
            s_resumers[peftType] = resumeTraining;
        }
    }

    /// <summary>The peft_types SharpTune reads, sorted.</summary>
    public static IReadOnlyList<string> SupportedTypes
    {
        get { lock (s_readers) return s_readers.Keys.Order(StringComparer.Ordinal).ToArray(); }
    }

    /// <summary>Reads the folder with the reader of its peft_type.</summary>
    /// <exception cref="InvalidDataException">adapter_config.json is unreadable, or names a peft_type no method reads.</exception>
    public static IModelAdapter Read(string directory) => Lookup(s_readers, directory)(directory);

    /// <summary>The folder's tuners attached to <paramref name="decoder"/> with their saved values, ready to train on.</summary>
    /// <exception cref="InvalidDataException">adapter_config.json is unreadable, or names a peft_type no method reads.</exception>
    public static ITrainableModel ResumeTraining(DecoderModel decoder, string directory) => Lookup(s_resumers, directory)(decoder, directory);

    private static T Lookup<T>(Dictionary<string, T> methods, string directory) where T : class
    {
        string type = PeftType(directory);
        T? method;
        lock (s_readers) methods.TryGetValue(type, out method);
        return method ?? throw new InvalidDataException(
            $"{Path.Combine(directory, ConfigFileName)}: peft_type {MessageText.Quote(type)} is not supported; SharpTune reads {string.Join(", ", SupportedTypes)}");
    }

    /// <summary>
    /// adapter_config.json's peft_type ("" when absent). A folder of the adapters library (adapter-hub) has no
    /// peft_type: its config's architecture names the method, so it reads as ADAPTERS_ + that name (null, the
    /// library's bottleneck adapter: ADAPTERS_BOTTLENECK), SharpTune's key for that format.
    /// </summary>
    public static string PeftType(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"adapter folder '{directory}' does not exist");
        return PeftConfigFile.Read(directory, (root, _, _) =>
        {
            if (root.TryGetProperty("peft_type", out var t)) return t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            if (root.TryGetProperty("version", out var version) && version.ValueKind == JsonValueKind.String
                && version.GetString()!.StartsWith(AdaptersLibraryVersionPrefix, StringComparison.Ordinal)
                && root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object)
                return "ADAPTERS_" + (config.TryGetProperty("architecture", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()!.ToUpperInvariant() : "BOTTLENECK");
            return "";
        });
    }
}
