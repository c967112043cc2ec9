using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Peft.Lora;

namespace SharpTune.Peft.Ia3;

/// <summary>
/// adapter_model.safetensors of an IA3 adapter in PEFT's key layout: "base_model.model.{module path}.ia3_l" per
/// wrapped Linear ([out, 1] or, for a feed-forward module, [1, in]). Reads adapters written by Python PEFT too.
/// </summary>
public static class Ia3AdapterFile
{
    public const string FileName = LoraAdapterFile.FileName;
    private const string Suffix = ".ia3_l";

    public static string Key(string modulePath) => $"{LoraAdapterFile.KeyPrefix}{modulePath}{Suffix}";

    /// <summary>Every ia3_l vector keyed by module path, with the shape the file gives it.</summary>
    /// <exception cref="InvalidDataException">A tensor that is not an ia3_l vector, naming the file and tensor.</exception>
    public static Dictionary<string, (long[] Shape, float[] Data)> Load(string adapterDirectory)
    {
        string path = Path.Combine(adapterDirectory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{adapterDirectory}: {FileName} is missing (adapter_model.bin adapters are not supported; save with safe_serialization)", path);
        using var file = SafetensorsFile.Open(path);
        var vectors = new Dictionary<string, (long[], float[])>(StringComparer.Ordinal);
        foreach (var t in file.Tensors)
        {
            if (!t.Name.StartsWith(LoraAdapterFile.KeyPrefix, StringComparison.Ordinal) || !t.Name.EndsWith(Suffix, StringComparison.Ordinal))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is not an IA3 vector ('{LoraAdapterFile.KeyPrefix}MODULE{Suffix}')");
            if (t.Shape.Length != 2 || t.Shape[0] != 1 && t.Shape[1] != 1)
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is [{string.Join(", ", t.Shape)}]; an ia3_l vector is [out, 1] or [1, in]");
            vectors[t.Name[LoraAdapterFile.KeyPrefix.Length..^Suffix.Length]] = (t.Shape, file.ReadFloat32(t.Name));
        }
        if (vectors.Count == 0) throw new InvalidDataException($"{path}: holds no IA3 vectors");
        return vectors;
    }

    /// <summary>Writes the layers' vectors atomically (float32, PEFT's keys and shapes, metadata {"format": "pt"}).</summary>
    public static void Save(string adapterDirectory, IEnumerable<Ia3Layer> layers)
    {
        Directory.CreateDirectory(adapterDirectory);
        SafetensorsWriter.Write(Path.Combine(adapterDirectory, FileName),
            layers.Select(l => (l.L.Name, l.L.Shape.Select(d => (long)d).ToArray(), l.L.Data)).ToList(), DType.F32, SafetensorsWriter.PyTorchMetadata);
    }
}
