namespace SharpTune.Training.Optim;

/// <summary>
/// An optimizer's storage with a checkpoint name and shape for every slot: <see cref="IOptimizer.StateTensors"/> and
/// <see cref="IOptimizer.Restore"/> for any layout.
/// </summary>
internal sealed class NamedState : IDisposable
{
    private readonly (string Name, long[] Shape)[] _names;

    public StateStorage Storage { get; }

    /// <summary>Lays out one slot per entry, in order: entry i is slot i.</summary>
    public NamedState(IReadOnlyList<(string Name, long[] Shape, StateSlot Slot)> entries, bool paged)
    {
        var duplicate = entries.GroupBy(e => e.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"two optimizer state tensors are named '{duplicate.Key}' (are two parameters named alike?)");
        _names = entries.Select(e => (e.Name, e.Shape)).ToArray();
        Storage = StateStorage.Create(entries.Select(e => e.Slot).ToList(), paged);
    }

    /// <summary>The paged state's backing file, null when the state is in managed arrays.</summary>
    public string? FilePath => Storage is PagedStateStorage paged ? paged.FilePath : null;

    public IReadOnlyList<OptimizerStateTensor> Tensors =>
        _names.Select((n, i) => new OptimizerStateTensor(n.Name, Storage.Slots[i].DType, n.Shape, Storage.Memory(i))).ToList();

    public void Restore(OptimizerStateReader read)
    {
        var tensors = Tensors;
        for (int i = 0; i < tensors.Count; i++) read(tensors[i], Storage.RawBytes(i));
    }

    public void Dispose() => Storage.Dispose();
}
