using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Model;

/// <summary>
/// Linears of a layer that read the same input and are stored as modules of their own (q_proj/k_proj/v_proj,
/// gate_proj/up_proj in Qwen2, Llama and Qwen3 checkpoints), whose frozen weights are kept as one matrix of their rows
/// stacked (<see cref="Stacked"/>): the base products of all of them are one GEMM over x (bf16 compute rounds x once),
/// and their input gradient one GEMM over their output gradients side by side. Each part's weight tensor holds a row
/// view of that matrix (<see cref="Views"/>), not a copy, so saving, merging, PEFT keys and every tuner see the parts as
/// before; biases and tuners stay each part's own, applied on its columns.
/// The stacked product is used only while every part's weight is still its view (<see cref="Fusable"/>): making one
/// trainable or folding an adapter into it materialises it, and a modules_to_save or huge-page copy replaces it, and
/// from then on the parts multiply one by one (the other parts still through their views), with the same numbers.
/// </summary>
public sealed class SharedInputLinears
{
    /// <summary>
    /// The projection slots whose Linears read one input: the query, key and value projections read the attention's
    /// normed input, the gate and up projections the MLP's. A group exists where each slot has a Linear of its own.
    /// </summary>
    public static IReadOnlyList<ProjectionSlot[]> SlotGroups { get; } =
        [[ProjectionSlot.Query, ProjectionSlot.Key, ProjectionSlot.Value], [ProjectionSlot.Gate, ProjectionSlot.Up]];

    private readonly ModelTensor _stacked;

    public SharedInputLinears(int index, IReadOnlyList<ProjectionSlot> slots, IReadOnlyList<TrainableLinear> parts, IFrozenMatrix stacked,
        IReadOnlyList<IFrozenMatrix> views, object? storage)
    {
        Index = index;
        Slots = slots;
        Parts = parts;
        _stacked = new ModelTensor(string.Join("+", parts.Select(p => p.ModulePath)), stacked, quantized: false);
        Views = views;
        Storage = storage;
        Offsets = new int[parts.Count];
        for (int i = 1; i < parts.Count; i++) Offsets[i] = Offsets[i - 1] + parts[i - 1].OutFeatures;
        Width = Offsets[^1] + parts[^1].OutFeatures;
    }

    /// <summary>The declaration's groups that exist: for each of <see cref="SlotGroups"/> whose slots are computed by distinct, unfused Linears, those Linears' declarations.</summary>
    public static IEnumerable<(int Index, ProjectionSlot[] Slots, LinearDeclaration[] Linears)> Declared(DecoderArchitecture arch)
    {
        for (int g = 0; g < SlotGroups.Count; g++)
        {
            var linears = SlotGroups[g].Select(arch.Projection).ToArray();
            if (linears.All(l => !l.IsFused)) yield return (g, SlotGroups[g], linears);
        }
    }

    /// <summary>Per group of <see cref="SlotGroups"/>, [rows × the parts' summed outputs] for one that <paramref name="c"/> declares, else null.</summary>
    public static Tensor?[] Scratch(ModelConfig c, int rows, IComputeBackend backend)
    {
        var scratch = new Tensor?[SlotGroups.Count];
        foreach (var (index, _, linears) in Declared(c.Description))
            scratch[index] = backend.Allocate(rows, linears.Sum(l => DecoderArchitecture.Shape(c, l).Out));
        return scratch;
    }

    /// <summary>The group's position in <see cref="SlotGroups"/> (and in <see cref="Scratch"/>).</summary>
    public int Index { get; }
    /// <summary>The slot each part computes, in stacking order.</summary>
    public IReadOnlyList<ProjectionSlot> Slots { get; }
    public IReadOnlyList<TrainableLinear> Parts { get; }
    /// <summary>The parts' weights as one [Σ out × in] matrix.</summary>
    public IFrozenMatrix Stacked => _stacked.Frozen!;
    /// <summary>Each part's row view of <see cref="Stacked"/>, as its weight tensor held it when the group was made.</summary>
    public IReadOnlyList<IFrozenMatrix> Views { get; private set; }
    /// <summary>Each part's first row in <see cref="Stacked"/>.</summary>
    public int[] Offsets { get; }
    public int Width { get; }

    /// <summary>What keeps the stacked matrix's memory alive (a pinned array), or null when the parts own it.</summary>
    private object? Storage { get; set; }

    /// <summary>
    /// Whether the parts' base products may run as one: every part's weight is still its view (frozen, not replaced)
    /// and no part has a tuner that changes its input (IA3 on a feed-forward Linear), so all read the same x.
    /// </summary>
    public bool Fusable
    {
        get
        {
            for (int i = 0; i < Parts.Count; i++)
                if (!ReferenceEquals(Parts[i].Weight.Frozen, Views[i]) || Parts[i].Tuners.Exists(t => t.TransformsInput)) return false;
            return true;
        }
    }

    /// <summary>The training forward of every part: y_i = x·W_iᵀ (+ b_i) by one product, then each part's tuners.</summary>
    public void Forward(IComputeBackend backend, Tensor x, int rows, Tensor[] outputs, Tensor scratch, TunerPass pass, SeededRandom? random)
    {
        using (StepProfile.Measure(StepSection.ProjectionsForward))
        {
            backend.Linear(x, rows, Stacked, bias: null, scratch);
            Split(backend, scratch, rows, outputs);
        }
        for (int i = 0; i < Parts.Count; i++) Parts[i].ForwardFromFrozenProduct(x, rows, outputs[i], pass, random);
    }

    /// <summary>The generation product of every part (<see cref="TrainableLinear.Generate(Tensor, int, Tensor)"/>) by one product.</summary>
    public void Generate(IComputeBackend backend, Tensor x, int rows, Tensor[] outputs, Tensor scratch)
    {
        TrainableLinear.Product(backend, _stacked, null, x, rows, scratch);
        Split(backend, scratch, rows, outputs);
        for (int i = 0; i < Parts.Count; i++) Parts[i].GenerateFromFrozenProduct(x, rows, outputs[i]);
    }

    /// <summary>
    /// The backward of every part from its output gradient: the gradients of the base products side by side in
    /// <paramref name="scratch"/>, one product for dL/dx (into dx, added when accumulate, unless dx is null), then
    /// each part's bias gradient and tuners, which add their share of dL/dx.
    /// </summary>
    public void Backward(IComputeBackend backend, Tensor x, Tensor[] gradients, int rows, Tensor scratch, Tensor? dx, bool accumulate)
    {
        var tunerGradients = new Tensor[]?[Parts.Count];
        var baseGradients = new Tensor[Parts.Count];
        for (int i = 0; i < Parts.Count; i++) tunerGradients[i] = Parts[i].OutputSideGradients(gradients[i], rows, out baseGradients[i]);
        if (dx is not null)
            using (StepProfile.Measure(StepSection.ProjectionsBackward))
            {
                for (int i = 0; i < Parts.Count; i++)
                    backend.CopyColumns(baseGradients[i], 0, scratch, Offsets[i], rows, Parts[i].OutFeatures);
                backend.LinearInputGradient(scratch, rows, Stacked, dx, accumulate);
            }
        for (int i = 0; i < Parts.Count; i++) Parts[i].BackwardFromFrozenProduct(x, gradients[i], tunerGradients[i], baseGradients[i], rows, dx);
    }

    /// <summary>
    /// Moves the stacked matrix to where <paramref name="copy"/> puts it (generation's huge pages) and gives every part
    /// a view of the copy; the old memory is let go. Only while <see cref="Fusable"/> and the matrix is kept as stored.
    /// </summary>
    public void MoveStorage(Func<WeightMatrix, WeightMatrix> copy)
    {
        var moved = copy(((StoredMatrix)Stacked).Matrix);
        var views = RowViews(moved, Parts.Select(p => p.OutFeatures).ToArray()).Select(v => (IFrozenMatrix)new StoredMatrix(v)).ToArray();
        for (int i = 0; i < Parts.Count; i++) Parts[i].Weight.Replace(views[i]);
        _stacked.Replace(new StoredMatrix(moved));
        Views = views;
        Storage = null;
    }

    /// <summary>
    /// The parts' matrices copied one after another into one pinned array (each mapped part's pages released once
    /// copied, so the process keeps the weights once), with the whole and each part's row view of it; null when the
    /// parts differ in dtype or width, or together exceed an array, and are not stacked.
    /// </summary>
    public static unsafe (WeightMatrix Stacked, WeightMatrix[] Views, byte[] Storage)? StackStored(IReadOnlyList<WeightMatrix> parts)
    {
        var dtype = parts[0].DType;
        int cols = parts[0].Cols;
        if (parts.Any(p => p.DType != dtype || p.Cols != cols)) return null;
        int size = DTypeInfo.SizeOf(dtype);
        long bytes = parts.Sum(p => (long)p.Rows * cols * size);
        if (bytes > Array.MaxLength) return null;
        var storage = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        byte* block = (byte*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(storage, 0);
        long offset = 0;
        foreach (var part in parts)
        {
            long length = (long)part.Rows * cols * size;
            Buffer.MemoryCopy(part.Data, block + offset, length, length);
            MappedPages.Release(part.Data, length);
            offset += length;
        }
        var stacked = new WeightMatrix(block, dtype, parts.Sum(p => p.Rows), cols);
        return (stacked, RowViews(stacked, parts.Select(p => p.Rows).ToArray()), storage);
    }

    /// <summary>Consecutive row ranges of <paramref name="whole"/>, <paramref name="rows"/>[i] rows each.</summary>
    private static unsafe WeightMatrix[] RowViews(WeightMatrix whole, int[] rows)
    {
        var views = new WeightMatrix[rows.Length];
        long first = 0;
        int size = DTypeInfo.SizeOf(whole.DType);
        for (int i = 0; i < rows.Length; i++)
        {
            views[i] = new WeightMatrix((byte*)whole.Data + first * whole.Cols * size, whole.DType, rows[i], whole.Cols);
            first += rows[i];
        }
        return views;
    }

    /// <summary>The stacked product's columns into each part's output.</summary>
    private void Split(IComputeBackend backend, Tensor whole, int rows, Tensor[] outputs)
    {
        for (int i = 0; i < Parts.Count; i++)
            backend.CopyColumns(whole, Offsets[i], outputs[i], 0, rows, Parts[i].OutFeatures);
    }
}
