using SharpTune.Engine;
using SharpTune.IO.Safetensors;
using SharpTune.Model;

namespace SharpTune.Peft;

/// <summary>
/// Merging adapters into base weights as PEFT's merge_and_unload does, for every method whose tuner layers fold into
/// their Linear (<see cref="ILinearTuner.MergeInto"/>: LoRA's W + scaling · B·A, IA3's rows or columns times l): the
/// change computed in fp32 from the base values and stored back in the base tensor's dtype; modules_to_save tensors
/// replace the base tensor. Several adapters merge in order, each result stored in the base dtype before the next (as
/// merging them one after another into a bf16 model does).
/// </summary>
public sealed class AdapterMerge
{
    private readonly IReadOnlyList<(IModelAdapter Adapter, Dictionary<string, ILinearTuner> Tuners)> _adapters;

    /// <summary>
    /// Checks each adapter against the checkpoint (see <see cref="ValidateAgainst"/>), then makes its tuner layers on
    /// <paramref name="backend"/>, where their products run.
    /// </summary>
    /// <exception cref="InvalidDataException">An adapter does not fit the checkpoint.</exception>
    /// <exception cref="NotSupportedException">An adapter is no weight change (<see cref="IModelAdapter.MergeRefusal"/>).</exception>
    public AdapterMerge(IReadOnlyList<IModelAdapter> adapters, SafetensorsCheckpoint checkpoint, string baseName, ModelConfig config, IComputeBackend backend)
    {
        foreach (var adapter in adapters)
            if (adapter.MergeRefusal is { } refusal) throw new NotSupportedException($"{adapter.Directory}: {refusal}");
        foreach (var adapter in adapters) ValidateAgainst(adapter, checkpoint, baseName, config);
        _adapters = adapters.Select(a => (a, a.CreateTuners(backend).ToDictionary(t => t.ModulePath, StringComparer.Ordinal))).ToArray();
    }

    /// <summary>
    /// Checks an adapter against a checkpoint: tuned modules are 2-D "{module}.weight" tensors, replaced tensors exist
    /// (with tied embeddings lm_head.weight exists as the embedding's shape, for modules_to_save to replace).
    /// </summary>
    public static void ValidateAgainst(IModelAdapter adapter, SafetensorsCheckpoint checkpoint, string baseName, ModelConfig config) =>
        adapter.ValidateAgainst(
            module => checkpoint.Contains(module + ".weight") && checkpoint.Get(module + ".weight").Shape is { Length: 2 } shape ? shape : null,
            name => checkpoint.Contains(name) ? checkpoint.Get(name).Shape
                : config.TieWordEmbeddings && name == config.Description.LmHeadTensor ? checkpoint.Get(config.Description.EmbeddingTensor).Shape : null,
            baseName);

    /// <summary>True when some adapter changes the base tensor <paramref name="name"/> (a tuned Linear's weight or bias, or a replaced tensor).</summary>
    public bool Changes(string name) =>
        _adapters.Any(a => a.Adapter.ReplacedTensors.ContainsKey(name) || LinearOf(name) is { } linear && a.Tuners.ContainsKey(linear.Module));

    /// <summary>
    /// The merged values of base tensor <paramref name="name"/> (fp32, each exactly representable in
    /// <paramref name="storedAs"/>), starting from <paramref name="baseValues"/>, which is overwritten. A bias merges
    /// with its Linear's weight, which <paramref name="readTensor"/> gives (fp32 values and stored dtype): a tuner may
    /// fold into both (IA3 scales the rows and the bias alike), while a weight's merge never depends on the bias.
    /// </summary>
    public float[] Merge(string name, float[] baseValues, DType storedAs, Func<string, (float[] Values, DType StoredAs)> readTensor)
    {
        var values = baseValues;
        var linear = LinearOf(name);
        (float[] Values, DType StoredAs)? weight = null;
        foreach (var (adapter, tuners) in _adapters)
        {
            if (adapter.ReplacedTensors.TryGetValue(name, out var replacement))
                replacement.Data.CopyTo(values, 0);
            else if (linear is { } l && tuners.TryGetValue(l.Module, out var tuner))
            {
                if (!l.IsBias)
                    tuner.MergeInto(values, null);
                else
                {
                    weight ??= readTensor(l.Module + ".weight");
                    tuner.MergeInto(weight.Value.Values, values);
                    RoundTo(weight.Value.Values, weight.Value.StoredAs);
                }
            }
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

    /// <summary>The module path of a Linear's weight or bias tensor ("x.q_proj.bias" → "x.q_proj", a bias), null for any other name.</summary>
    private static (string Module, bool IsBias)? LinearOf(string tensorName) =>
        tensorName.EndsWith(".weight", StringComparison.Ordinal) ? (tensorName[..^".weight".Length], false)
        : tensorName.EndsWith(".bias", StringComparison.Ordinal) ? (tensorName[..^".bias".Length], true)
        : null;
}
