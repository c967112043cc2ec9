using SharpTune.Engine;
using SharpTune.Model;
using SharpTune.Quantization;

namespace SharpTune.Training.Optim;

/// <summary>
/// bitsandbytes' 8-bit AdamW (<c>bnb.optim.AdamW8bit</c>; Dettmers et al., "8-bit Optimizers via Block-wise
/// Quantization"): optim <c>adamw_8bit</c>, and <c>paged_adamw_8bit</c> with paged state.
/// <para>
/// What is reproduced, from <c>Optimizer2State</c> and the blockwise update (<c>optimizer_update_8bit_blockwise</c>,
/// CUDA kernel <c>kOptimizerStatic8bit2StateBlockwise</c>, pure-PyTorch reference
/// <c>optimizer_update_8bit_blockwise_pytorch</c>):
/// </para>
/// <list type="bullet">
/// <item>Each moment is stored as one 8-bit code per element plus one fp32 absmax per block of 256 elements: the
/// first moment with the signed dynamic map (<c>"dynamic"</c>), the second with the unsigned one
/// (<c>"udynamic"</c>) (<see cref="DynamicMap"/>). Codes and absmax start at zero, as bitsandbytes allocates them.</item>
/// <item>Tensors with fewer than <c>min_8bit_size</c> (4096) elements keep fp32 moments and take the ordinary
/// 32-bit AdamW step, as bitsandbytes does.</item>
/// <item>Per block: dequantise both moments (map[code] · absmax), the fp32 AdamW update with bias correction and
/// decoupled weight decay on the fp32 master weights (<see cref="AdamWStep"/>, the same element-wise arithmetic
/// as <c>adamw_torch</c>), then requantise the new moments: absmax = max |moment| over the block, each element to
/// the nearest code of moment / absmax by the kernel's binary search (<see cref="BlockwiseQuantizer"/>).</item>
/// <item>The kernel's sign rule for the first moment: when the chosen code's sign bit differs from the moment's
/// (a small negative moment rounded to the code 0), the code moves one step towards the moment's sign.</item>
/// </list>
/// <para>
/// Where bitsandbytes' implementations disagree we follow its PyTorch reference: weight decay multiplies the weights
/// before the step (the CUDA kernel applies it after; the two differ by a term of order lr² · weight_decay), and a
/// non-finite gradient propagates as in <c>adamw_torch</c> (the CUDA kernel instead zeroes that element's moments
/// and leaves its weight). The kernel divides by absmax with a fast approximate division; we multiply by the
/// reciprocal, as bitsandbytes' blockwise quantiser does.
/// </para>
/// </summary>
public sealed class AdamW8Bit : IOptimizer
{
    /// <summary>Elements per absmax block (bitsandbytes' blockwise optimizers use 256).</summary>
    public const int BlockSize = 256;

    /// <summary>bitsandbytes' default min_8bit_size: smaller tensors keep fp32 moments.</summary>
    public const int DefaultMin8BitSize = 4096;

    /// <summary>Checkpoint names of the absmax blocks of a quantised moment: the prefix plus the parameter's name.</summary>
    public const string ExpAvgAbsmaxPrefix = "exp_avg_absmax.";
    public const string ExpAvgSqAbsmaxPrefix = "exp_avg_sq_absmax.";

    /// <summary>Blocks one parallel task updates: large tensors are split so that all cores share them.</summary>
    private const int BlocksPerTask = 64;

    private static readonly float[] SignedMap = DynamicMap.Signed();
    private static readonly float[] UnsignedMap = DynamicMap.Unsigned();

    private readonly NamedState _state;
    /// <summary>Per parameter: whether its moments are 8-bit, and its first slot (fp32: m, v; 8-bit: m codes, m absmax, v codes, v absmax).</summary>
    private readonly (bool Quantized, int FirstSlot)[] _layout;
    /// <summary>The parallel work: (parameter, first block, end block); an fp32 parameter is one item.</summary>
    private readonly (int Parameter, int FirstBlock, int EndBlock)[] _tasks;
    private readonly LearningRateGroups _groups;

    public string Name { get; }
    public string StateFormat => "adamw_8bit";
    public IReadOnlyList<Parameter> Parameters { get; }
    public AdamWHyperparameters Hyperparameters { get; }
    public int Min8BitSize { get; }
    public bool Paged { get; }
    public long Step { get; private set; }
    public long StateBytes => _state.Storage.Bytes;

    /// <summary>The temporary file of paged state (null when not paged); it is deleted by <see cref="Dispose"/>.</summary>
    internal string? StateFilePath => _state.FilePath;
    public IReadOnlyList<OptimizerStateTensor> StateTensors => _state.Tensors;

    public AdamW8Bit(IReadOnlyList<Parameter> parameters, AdamWHyperparameters hyperparameters, bool paged = false, int min8BitSize = DefaultMin8BitSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(min8BitSize);
        Parameters = parameters;
        Hyperparameters = hyperparameters;
        Paged = paged;
        Min8BitSize = min8BitSize;
        Name = paged ? OptimizerNames.PagedAdamW8Bit : OptimizerNames.AdamW8Bit;

        var entries = new List<(string, long[], StateSlot)>();
        var tasks = new List<(int, int, int)>();
        _layout = new (bool, int)[parameters.Count];
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            var slots = SlotsFor(p.Length, min8BitSize);
            bool quantized = slots.Length == 4;
            _layout[i] = (quantized, entries.Count);
            long[] shape = AdamW.Shape(p);
            if (!quantized)
            {
                entries.Add((AdamW.ExpAvgPrefix + p.Name, shape, slots[0]));
                entries.Add((AdamW.ExpAvgSqPrefix + p.Name, shape, slots[1]));
                tasks.Add((i, 0, 0));
                continue;
            }
            int blocks = slots[1].Count;
            entries.Add((AdamW.ExpAvgPrefix + p.Name, shape, slots[0]));
            entries.Add((ExpAvgAbsmaxPrefix + p.Name, [blocks], slots[1]));
            entries.Add((AdamW.ExpAvgSqPrefix + p.Name, shape, slots[2]));
            entries.Add((ExpAvgSqAbsmaxPrefix + p.Name, [blocks], slots[3]));
            for (int first = 0; first < blocks; first += BlocksPerTask) tasks.Add((i, first, Math.Min(blocks, first + BlocksPerTask)));
        }
        _tasks = tasks.ToArray();
        _groups = new LearningRateGroups(parameters);
        _state = new NamedState(entries, paged);
    }

    /// <summary>
    /// The state slots of a parameter of <paramref name="length"/> values: fp32 m and v below min_8bit_size, else
    /// m codes, m absmax per block, v codes, v absmax per block.
    /// </summary>
    private static StateSlot[] SlotsFor(int length, int min8BitSize)
    {
        if (length < min8BitSize) return [new(DType.F32, length), new(DType.F32, length)];
        int blocks = BlockwiseQuantizer.BlockCount(length, BlockSize);
        return [new(DType.U8, length), new(DType.F32, blocks), new(DType.U8, length), new(DType.F32, blocks)];
    }

    /// <summary>Bytes of state for parameters of these lengths (about 2 per value for large tensors), as the constructor lays it out.</summary>
    public static long StateBytesFor(IEnumerable<int> parameterLengths, int min8BitSize = DefaultMin8BitSize) =>
        parameterLengths.Sum(length => SlotsFor(length, min8BitSize).Sum(slot => slot.ByteSize));

    /// <summary>Whether parameter <paramref name="index"/>'s moments are 8-bit (it has at least min_8bit_size elements).</summary>
    public bool IsQuantized(int index) => _layout[index].Quantized;

    /// <summary>
    /// Parameter <paramref name="index"/>'s first and second moment as fp32 values: the dequantised codes for an
    /// 8-bit parameter, a copy of the moments otherwise.
    /// </summary>
    public (float[] ExpAvg, float[] ExpAvgSq) Moments(int index)
    {
        var p = Parameters[index];
        var (quantized, slot) = _layout[index];
        var storage = _state.Storage;
        if (!quantized) return (storage.Floats(slot).ToArray(), storage.Floats(slot + 1).ToArray());
        var m = new float[p.Length];
        var v = new float[p.Length];
        BlockwiseQuantizer.Dequantize(storage.Codes(slot), storage.Floats(slot + 1), BlockSize, SignedMap, m);
        BlockwiseQuantizer.Dequantize(storage.Codes(slot + 2), storage.Floats(slot + 3), BlockSize, UnsignedMap, v);
        return (m, v);
    }

    public void Update(double lr)
    {
        Step++;
        var steps = _groups.Steps(Hyperparameters, lr, Step);
        GemmThreadPool.Shared.For(_tasks.Length, t =>
        {
            var (parameter, firstBlock, endBlock) = _tasks[t];
            var p = Parameters[parameter];
            var step = steps[_groups.GroupOf(parameter)];
            var (quantized, slot) = _layout[parameter];
            if (quantized) UpdateBlocks(step, p, slot, firstBlock, endBlock);
            else step.Apply(p.Data, p.Grad, _state.Storage.Floats(slot), _state.Storage.Floats(slot + 1), step.DecayFor(p));
        });
    }

    /// <summary>Dequantise → fp32 AdamW → requantise, block by block.</summary>
    private void UpdateBlocks(AdamWStep step, Parameter p, int slot, int firstBlock, int endBlock)
    {
        var storage = _state.Storage;
        Span<byte> expAvgCodes = storage.Codes(slot);
        Span<float> expAvgAbsmax = storage.Floats(slot + 1);
        Span<byte> expAvgSqCodes = storage.Codes(slot + 2);
        Span<float> expAvgSqAbsmax = storage.Floats(slot + 3);
        Span<float> m = stackalloc float[BlockSize];
        Span<float> v = stackalloc float[BlockSize];
        float decay = step.DecayFor(p);
        for (int block = firstBlock; block < endBlock; block++)
        {
            int start = block * BlockSize;
            int length = Math.Min(BlockSize, p.Length - start);
            Span<float> blockM = m[..length], blockV = v[..length];
            Span<byte> codesM = expAvgCodes.Slice(start, length), codesV = expAvgSqCodes.Slice(start, length);
            Span<float> absmaxM = expAvgAbsmax.Slice(block, 1), absmaxV = expAvgSqAbsmax.Slice(block, 1);

            BlockwiseQuantizer.Dequantize(codesM, absmaxM, BlockSize, SignedMap, blockM);
            BlockwiseQuantizer.Dequantize(codesV, absmaxV, BlockSize, UnsignedMap, blockV);
            step.Apply(p.Data.AsSpan(start, length), p.Grad.AsSpan(start, length), blockM, blockV, decay);
            BlockwiseQuantizer.Quantize(blockM, BlockSize, SignedMap, codesM, absmaxM);
            KeepSigns(blockM, codesM);
            BlockwiseQuantizer.Quantize(blockV, BlockSize, UnsignedMap, codesV, absmaxV);
        }
    }

    /// <summary>The kernel's rule that a first-moment code keeps the moment's sign bit (the second moment is never negative).</summary>
    private static void KeepSigns(ReadOnlySpan<float> moments, Span<byte> codes)
    {
        for (int j = 0; j < moments.Length; j++)
            if (float.IsNegative(SignedMap[codes[j]]) != float.IsNegative(moments[j]))
                codes[j] = (byte)(moments[j] > 0 ? codes[j] + 1 : codes[j] - 1);
    }

    public void Restore(long step, OptimizerStateReader read)
    {
        _state.Restore(read);
        Step = step;
    }

    public void Dispose() => _state.Dispose();
}
