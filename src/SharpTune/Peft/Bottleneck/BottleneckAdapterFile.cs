using SharpTune.Engine;
using SharpTune.IO.Safetensors;

namespace SharpTune.Peft.Bottleneck;

/// <summary>
/// The adapters library's weights file of a bottleneck adapter, adapter.safetensors (what its save_adapter writes with
/// use_safetensors=True), keyed as its state dict names the blocks on a Qwen2/LLaMA model:
/// "model.layers.{i}.attention_adapters.adapters.{name}." (after the attention, on o_proj's output) and
/// "model.layers.{i}.output_adapters.adapters.{name}." (after the MLP, on down_proj's output), each with
/// adapter_down.0.weight/bias (the bottleneck Linear, first of the down Sequential) and adapter_up.weight/bias.
/// </summary>
public static class BottleneckAdapterFile
{
    public const string FileName = "adapter.safetensors";
    public const string AttentionBlock = "attention_adapters";
    public const string OutputBlock = "output_adapters";

    public static string KeyPrefix(string layerPrefix, string block, string adapterName) => $"{layerPrefix}.{block}.adapters.{adapterName}";
    public static string DownWeightKey(string prefix) => prefix + ".adapter_down.0.weight";
    public static string DownBiasKey(string prefix) => prefix + ".adapter_down.0.bias";
    public static string UpWeightKey(string prefix) => prefix + ".adapter_up.weight";
    public static string UpBiasKey(string prefix) => prefix + ".adapter_up.bias";

    /// <summary>Every tensor of the file by name (float32 values with their shape).</summary>
    public static Dictionary<string, (long[] Shape, float[] Data)> Load(string adapterDirectory)
    {
        string path = Path.Combine(adapterDirectory, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{adapterDirectory}: {FileName} is missing (pytorch_adapter.bin pickles are not read; save with use_safetensors=True)", path);
        using var file = SafetensorsFile.Open(path);
        return file.Tensors.ToDictionary(t => t.Name, t => (t.Shape, file.ReadFloat32(t.Name)), StringComparer.Ordinal);
    }

    /// <summary>Writes the layers' parameters atomically, float32 under their keys (safetensors' own format, no metadata, as save_file writes).</summary>
    public static void Save(string adapterDirectory, IEnumerable<BottleneckLayer> layers)
    {
        Directory.CreateDirectory(adapterDirectory);
        SafetensorsWriter.Write(Path.Combine(adapterDirectory, FileName),
            layers.SelectMany(l => l.Parameters).Select(p => (p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data)).ToList(), DType.F32);
    }
}
