using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Peft.Lora;

/// <summary>
/// Merging LoRA adapters into base weights as PEFT's merge_and_unload does: W' = W + scaling · B·A (DoRA: each row of
/// that then scaled to its magnitude, see <see cref="DoraLayer"/>), computed in fp32 from the base values and stored back in the base tensor's dtype; modules_to_save tensors replace the base
/// tensor. Several adapters merge in order, each result stored in the base dtype before the next (as merging them
/// one after another into a bf16 model does).
/// </summary>
public static class LoraMerge
{
    /// <summary>
    /// Checks an adapter against a checkpoint: LoRA modules are 2-D "{module}.weight" tensors, replaced tensors exist
    /// (with tied embeddings lm_head.weight exists as the embedding's shape, for modules_to_save to replace).
    /// </summary>
    public static void ValidateAgainst(LoraAdapter adapter, SafetensorsCheckpoint checkpoint, string baseName, ModelConfig config) =>
        adapter.ValidateAgainst(
            module => checkpoint.Contains(module + ".weight") && checkpoint.Get(module + ".weight").Shape is { Length: 2 } shape ? shape : null,
            name => checkpoint.Contains(name) ? checkpoint.Get(name).Shape
                : config.TieWordEmbeddings && name == config.Description.LmHeadTensor ? checkpoint.Get(config.Description.EmbeddingTensor).Shape : null,
            baseName);

    /// <summary>True when some adapter changes the base tensor <paramref name="name"/>.</summary>
    public static bool Changes(IReadOnlyList<LoraAdapter> adapters, string name) =>
        adapters.Any(a => a.ReplacedTensors.ContainsKey(name) || ModulePathOf(name) is { } m && a.Pairs.ContainsKey(m));

    /// <summary>
    /// The merged values of base tensor <paramref name="name"/> (fp32, each exactly representable in
    /// <paramref name="storedAs"/>), starting from <paramref name="baseValues"/>, which is overwritten; the products run on
    /// <paramref name="backend"/>.
    /// </summary>
    public static float[] Merge(IReadOnlyList<LoraAdapter> adapters, string name, float[] baseValues, DType storedAs, IComputeBackend backend)
    {
        var values = baseValues;
        string? module = ModulePathOf(name);
        foreach (var adapter in adapters)
        {
            if (adapter.ReplacedTensors.TryGetValue(name, out var replacement))
                replacement.Data.CopyTo(values, 0);
            else if (module is not null && adapter.Pairs.TryGetValue(module, out var pair))
                LoraLayer.ForPair(pair, adapter.Config, backend).MergeInto(values);
            else
                continue;
            RoundTo(values, storedAs);
        }
        return values;
    }

    /// <summary>Rounds every value to the nearest one the dtype can store (round to nearest even), as storing and reloading would.</summary>
    private static void RoundTo(float[] values, DType dtype)
    {
        switch (dtype)
        {
            case DType.F32:
                break;
            case DType.BF16:
            {
                var bits = new ushort[values.Length];
                BFloat16.FromSingle(values, bits);
                BFloat16.ToSingle(bits, values);
                break;
            }
            case DType.F16:
            {
                var halves = new Half[values.Length];
                Float16.FromSingle(values, halves);
                Float16.ToSingle(halves, values);
                break;
            }
            default:
                throw new ArgumentException($"cannot merge into a {dtype} tensor; weights must be F32, BF16 or F16");
        }
    }

    /// <summary>The module path of a Linear's weight tensor ("x.q_proj.weight" → "x.q_proj"), null for any other name.</summary>
    private static string? ModulePathOf(string tensorName) =>
        tensorName.EndsWith(".weight", StringComparison.Ordinal) ? tensorName[..^".weight".Length] : null;
}
