using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Peft.Lora;

/// <summary>
/// The A and B matrices of one wrapped Linear: A is [r × in], B is [out × r], as PEFT stores them; with DoRA also the
/// magnitude vector [out].
/// </summary>
public sealed record LoraPair(string ModulePath, float[] A, float[] B, int Rank, int InFeatures, int OutFeatures, float[]? Magnitude = null);

/// <summary>
/// adapter_model.safetensors in PEFT's key layout: "base_model.model.{module path}.lora_A.weight" / "lora_B.weight"
/// (module path = the wrapped Linear's name in the base model, e.g. model.layers.0.self_attn.q_proj), with DoRA
/// "base_model.model.{module path}.lora_magnitude_vector" (PEFT's saved name, ".weight" dropped), plus full
/// tensors of modules_to_save under "base_model.model.{name}". Reads adapters written by Python PEFT too.
/// </summary>
public static class LoraAdapterFile
{
    public const string FileName = "adapter_model.safetensors";
    public const string KeyPrefix = "base_model.model.";

    public static string KeyA(string modulePath) => $"{KeyPrefix}{modulePath}.lora_A.weight";
    public static string KeyB(string modulePath) => $"{KeyPrefix}{modulePath}.lora_B.weight";
    public static string KeyMagnitude(string modulePath) => $"{KeyPrefix}{modulePath}.lora_magnitude_vector";

    /// <summary>
    /// Reads every LoRA pair (keyed by module path) and every other tensor (keyed by its base-model name, prefix
    /// removed). With <paramref name="useDora"/> every pair must have its magnitude vector, without it none may.
    /// </summary>
    public static (Dictionary<string, LoraPair> Pairs, Dictionary<string, (long[] Shape, float[] Data)> Extra) Load(string adapterDirectory, int rank, bool useDora = false)
    {
        string path = Path.Combine(adapterDirectory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{adapterDirectory}: {FileName} is missing (adapter_model.bin adapters are not supported; save with safe_serialization)", path);
        using var file = SafetensorsFile.Open(path);
        var pairs = new Dictionary<string, LoraPair>(StringComparer.Ordinal);
        var extra = new Dictionary<string, (long[], float[])>(StringComparer.Ordinal);
        foreach (var t in file.Tensors)
        {
            if (!t.Name.StartsWith(KeyPrefix, StringComparison.Ordinal))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' does not start with '{KeyPrefix}'");
            if (t.Name.EndsWith(".lora_B.weight", StringComparison.Ordinal) || MagnitudeModule(t.Name) is not null) continue;
            if (t.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            {
                string module = t.Name[KeyPrefix.Length..^".lora_A.weight".Length];
                string keyB = KeyB(module);
                if (!file.Contains(keyB)) throw new InvalidDataException($"{path}: '{t.Name}' has no matching '{keyB}'");
                var b = file.Get(keyB);
                if (t.Shape.Length != 2 || b.Shape.Length != 2 || t.Shape[0] != rank || b.Shape[1] != rank)
                    throw new InvalidDataException($"{path}: {module}: lora_A [{string.Join(", ", t.Shape)}] and lora_B [{string.Join(", ", b.Shape)}] do not match r = {rank}");
                float[]? magnitude = null;
                string? keyMagnitude = new[] { KeyMagnitude(module), KeyMagnitude(module) + ".weight" }.FirstOrDefault(file.Contains);
                if (useDora != keyMagnitude is not null)
                    throw new InvalidDataException(useDora
                        ? $"{path}: {module}: adapter_config.json has use_dora: true but there is no '{KeyMagnitude(module)}'"
                        : $"{path}: '{keyMagnitude}' is a DoRA magnitude vector but adapter_config.json has use_dora: false");
                if (keyMagnitude is not null)
                {
                    var m = file.Get(keyMagnitude);
                    if (m.Shape.Length != 1 || m.Shape[0] != b.Shape[0])
                        throw new InvalidDataException($"{path}: '{keyMagnitude}' is [{string.Join(", ", m.Shape)}], lora_B has {b.Shape[0]} rows");
                    magnitude = file.ReadFloat32(keyMagnitude);
                }
                pairs[module] = new LoraPair(module, file.ReadFloat32(t.Name), file.ReadFloat32(keyB), rank, (int)t.Shape[1], (int)b.Shape[0], magnitude);
                continue;
            }
            if (t.Name.Contains(".lora_", StringComparison.Ordinal))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is a LoRA tensor SharpTune does not know (only lora_A/lora_B weights)");
            extra[t.Name[KeyPrefix.Length..]] = (t.Shape, file.ReadFloat32(t.Name));
        }
        foreach (var t in file.Tensors)
            if (MagnitudeModule(t.Name) is { } module && !pairs.ContainsKey(module))
                throw new InvalidDataException($"{path}: '{t.Name}' has no matching lora_A/lora_B pair");
        return (pairs, extra);
    }

    /// <summary>The module path of a magnitude vector's key (with or without ".weight"), else null.</summary>
    private static string? MagnitudeModule(string key)
    {
        if (!key.StartsWith(KeyPrefix, StringComparison.Ordinal)) return null;
        foreach (string suffix in new[] { ".lora_magnitude_vector", ".lora_magnitude_vector.weight" })
            if (key.EndsWith(suffix, StringComparison.Ordinal)) return key[KeyPrefix.Length..^suffix.Length];
        return null;
    }

    /// <summary>Writes the pairs (and full modules_to_save tensors) atomically, float32 unless told otherwise, metadata {"format": "pt"}.</summary>
    public static void Save(string adapterDirectory, IEnumerable<LoraPair> pairs,
        IEnumerable<(string Name, long[] Shape, float[] Data)>? extra = null, DType storeAs = DType.F32)
    {
        var tensors = new List<(string, long[], float[])>();
        foreach (var p in pairs)
        {
            tensors.Add((KeyA(p.ModulePath), [p.Rank, p.InFeatures], p.A));
            tensors.Add((KeyB(p.ModulePath), [p.OutFeatures, p.Rank], p.B));
            if (p.Magnitude is not null) tensors.Add((KeyMagnitude(p.ModulePath), [p.OutFeatures], p.Magnitude));
        }
        if (extra is not null)
            foreach (var (name, shape, data) in extra) tensors.Add((KeyPrefix + name, shape, data));
        Directory.CreateDirectory(adapterDirectory);
        SafetensorsWriter.Write(Path.Combine(adapterDirectory, FileName), tensors, storeAs, SafetensorsWriter.PyTorchMetadata);
    }
}
