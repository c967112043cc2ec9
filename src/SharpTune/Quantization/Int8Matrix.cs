using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>
/// LLM.int8() (Dettmers et al. 2022) as bitsandbytes' <c>Linear8bitLt</c> / <c>MatMul8bitLt</c> run it with
/// threshold 6.0 and frozen int8 weights, reproduced from its default backend ops:
/// <list type="bullet">
/// <item>Weights (<c>int8_vectorwise_quant</c>, threshold 0): per output row SCB = max |w|, CB = round(w · (127 / SCB))
/// (round half to even).</item>
/// <item>Forward (<c>int8_vectorwise_quant</c> with threshold, then <c>int8_mixed_scaled_mm</c>): input elements with
/// |x| ≥ 6 are outliers and their columns are outlier columns. Each input row's scale SCA is the absmax of its
/// non-outlier elements; CA = round(x · (127 / SCA)) with the outlier columns zeroed. The int8 product CA·CBᵀ is
/// exact in int32 and rescaled as <c>int8_mm_dequant</c> does: acc · (SCA · SCB) · 6.200124e-05 (1/127²). The outlier
/// columns of x, unquantised, are then multiplied in fp32 by the dequantised weight columns and added.</item>
/// <item>Backward: dx = dy · dequant(W) in fp32, dequant(W) = CB · SCB · (1/127) as <c>int8_vectorwise_dequant</c>.</item>
/// </list>
/// bitsandbytes casts activations and weights to fp16 before quantising; here they are quantised from fp32, which
/// only differs where fp16 would have rounded.
/// With a <see cref="TiledFrozenMatrix.Bf16Kernel"/> (<c>bf16: true</c>, the model's dtype bf16) the activations are
/// the bf16-rounded x and the products run on the bf16 GEMM: the int8 codes are exact in bf16, so the int8 product is
/// the same exact integer; the outlier columns multiply bf16 x by the dequantised columns cast to bf16, and the
/// backward's weight is <c>CB.to(bf16).mul_(SCB · (1/127))</c> (MatMul8bitLt.backward), code · (SCB · 1/127) rounded to bf16.
/// </summary>
public sealed unsafe class Int8Matrix : TiledFrozenMatrix
{
    public const float OutlierThreshold = 6f;

    /// <summary>int8_mm_dequant's constant, 1/(127·127) as bitsandbytes writes it.</summary>
    private const float MatmulDequantScale = 6.200124e-05f;

    /// <summary>int8_vectorwise_dequant's constant, 1/127 as bitsandbytes writes it.</summary>
    private const float VectorDequantScale = 7.874015718698502e-3f;

    /// <summary>
    /// Columns per exact fp32 slice of the int8 product: |codes| ≤ 127, so a slice's partial sums stay below
    /// 1024 · 127² &lt; 2²⁴ and every fp32 partial sum is an exact integer whatever order the GEMM adds in.
    /// </summary>
    private const int ExactSliceCols = 1024;

    private readonly sbyte[] _codes;
    private readonly float[] _rowAbsmax;
    /// <summary>This matrix's first row in the codes and absmax, which the parts of a <see cref="Stack"/> share.</summary>
    private readonly int _firstRow;

    [ThreadStatic] private static ScratchBuffer? t_slice;
    [ThreadStatic] private static ScratchBuffer? t_partial;
    [ThreadStatic] private static ScratchBuffer? t_accumulator;
    [ThreadStatic] private static ScratchBuffer? t_activationCodes;
    [ThreadStatic] private static ScratchBuffer? t_activationAbsmax;
    [ThreadStatic] private static ScratchBuffer? t_outlierColumns;
    [ThreadStatic] private static ScratchBuffer? t_outlierInputs;
    [ThreadStatic] private static ScratchBuffer? t_roundedInput;

    private Int8Matrix(int rows, int cols, sbyte[] codes, float[] rowAbsmax, OneDnnGemmKernel? bf16Kernel, int firstRow = 0) : base(rows, cols, bf16Kernel)
    {
        _codes = codes;
        _rowAbsmax = rowAbsmax;
        _firstRow = firstRow;
    }

    /// <summary>
    /// The parts' rows one after another as one matrix, and each part again as a row view of it: the codes and
    /// absmax are per row, so the stack holds exactly the parts' values and its product each part's, in one call.
    /// </summary>
    public static (Int8Matrix Stacked, Int8Matrix[] Views) Stack(IReadOnlyList<Int8Matrix> parts)
    {
        int cols = parts[0].Cols, rows = parts.Sum(p => p.Rows);
        if (parts.Any(p => p.Cols != cols)) throw new ArgumentException("stacked matrices need the same width");
        var codes = new sbyte[(long)rows * cols];
        var absmax = new float[rows];
        var views = new Int8Matrix[parts.Count];
        int first = 0;
        for (int i = 0; i < parts.Count; i++)
        {
            parts[i].Codes.CopyTo(codes.AsSpan(first * cols));
            parts[i].RowAbsmax.CopyTo(absmax.AsSpan(first));
            views[i] = new Int8Matrix(parts[i].Rows, cols, codes, absmax, parts[i].Bf16Kernel, first);
            first += parts[i].Rows;
        }
        return (new Int8Matrix(rows, cols, codes, absmax, parts[0].Bf16Kernel), views);
    }

    /// <summary>The int8 weight codes CB, row-major.</summary>
    public ReadOnlySpan<sbyte> Codes => _codes.AsSpan(_firstRow * Cols, Rows * Cols);

    /// <summary>SCB: each output row's absmax.</summary>
    public ReadOnlySpan<float> RowAbsmax => _rowAbsmax.AsSpan(_firstRow, Rows);

    /// <summary>The <see cref="StorageBytes"/> of a rows×cols weight quantised by <see cref="Quantize"/>: a code per value, an fp32 absmax per row.</summary>
    public static long StorageBytesFor(int rows, int cols) => (long)rows * cols + 4L * rows;

    public override long StorageBytes => StorageBytesFor(Rows, Cols);

    /// <summary>Quantises the weight row by row; with <paramref name="bf16Kernel"/> its products run in bf16.</summary>
    public static Int8Matrix Quantize(WeightMatrix weight, OneDnnGemmKernel? bf16Kernel = null)
    {
        if (weight.Rows <= 0 || weight.Cols <= 0)
            throw new ArgumentException($"cannot quantise a {weight.Rows}×{weight.Cols} weight");
        var codes = new sbyte[(long)weight.Rows * weight.Cols];
        var absmax = new float[weight.Rows];
        int cols = weight.Cols;
        int tasks = Math.Min(weight.Rows, 4 * GemmThreadPool.Shared.Threads);
        int rowsPerTask = (weight.Rows + tasks - 1) / tasks;
        GemmThreadPool.Shared.For(tasks, task =>
        {
            var row = new float[cols];
            int end = Math.Min(weight.Rows, (task + 1) * rowsPerTask);
            for (int r = task * rowsPerTask; r < end; r++)
            {
                weight.ReadRow(r, row);
                absmax[r] = QuantizeRow(row, codes.AsSpan(r * cols, cols));
            }
        });
        return new Int8Matrix(weight.Rows, weight.Cols, codes, absmax, bf16Kernel);
    }

    /// <summary>
    /// codes = round(values · (127 / absmax)), returning absmax. An all-zero row (127/0 = ∞, 0·∞ = NaN, whose
    /// int8 cast is undefined in bitsandbytes) gets code 0.
    /// </summary>
    private static float QuantizeRow(ReadOnlySpan<float> values, Span<sbyte> codes)
    {
        float absmax = 0f;
        foreach (float value in values)
            absmax = MathF.Max(absmax, MathF.Abs(value));
        float factor = 127f / absmax;
        for (int i = 0; i < values.Length; i++)
            codes[i] = absmax == 0f ? (sbyte)0 : (sbyte)MathF.Round(values[i] * factor, MidpointRounding.ToEven);
        return absmax;
    }

    protected override void DequantizeRows(int firstRow, int count, Span<float> destination)
    {
        int cols = Cols;
        firstRow += _firstRow;
        fixed (sbyte* codes = _codes)
        fixed (float* target = destination)
            for (int r = 0; r < count; r++)
                WidenRow(codes + (long)(firstRow + r) * cols, cols, _rowAbsmax[firstRow + r], VectorDequantScale, target + (long)r * cols);
    }

    /// <summary>MatMul8bitLt.backward's weight under a bf16 dtype: CB.to(bf16).mul_(SCB · (1/127)), the scale formed first.</summary>
    protected override void DequantizeRowsForBf16(int firstRow, int count, Span<float> destination)
    {
        int cols = Cols;
        firstRow += _firstRow;
        fixed (sbyte* codes = _codes)
        fixed (float* target = destination)
            for (int r = 0; r < count; r++)
                WidenRow(codes + (long)(firstRow + r) * cols, cols, _rowAbsmax[firstRow + r] * VectorDequantScale, 1f, target + (long)r * cols);
    }

    /// <summary>output[c] = codes[c] · scale · factor, in that order (int8_vectorwise_dequant's A · stats · 1/127).</summary>
    private static void WidenRow(sbyte* codes, int count, float scale, float factor, float* output)
    {
        int c = 0;
        if (Avx512F.IsSupported)
        {
            Vector512<float> scales = Vector512.Create(scale), factors = Vector512.Create(factor);
            for (; c + 16 <= count; c += 16)
                (Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(codes + c))) * scales * factors).Store(output + c);
        }
        for (; c < count; c++)
            output[c] = codes[c] * scale * factor;
    }

    /// <summary>output[c] = codes[c] as bf16 bits: an integer of at most 8 bits is exact in bf16, its fp32 bits' upper half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenCodesRowBf16(sbyte* codes, int count, ushort* output)
    {
        int c = 0;
        if (Avx512F.IsSupported)
            for (; c + 16 <= count; c += 16)
            {
                Vector512<uint> bits = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(codes + c))).AsUInt32();
                Avx512F.ConvertToVector256UInt16(Vector512.ShiftRightLogical(bits, 16)).Store(output + c);
            }
        for (; c < count; c++)
            output[c] = (ushort)(BitConverter.SingleToUInt32Bits(codes[c]) >> 16);
    }

    /// <summary>output[c] = codes[c] as an exact fp32 integer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenCodesRow(sbyte* codes, int count, float* output)
    {
        int c = 0;
        if (Avx512F.IsSupported)
            for (; c + 16 <= count; c += 16)
                Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(codes + c))).Store(output + c);
        for (; c < count; c++)
            output[c] = codes[c];
    }

    public override void MultiplyTransposed(float[] x, int m, float[] y)
    {
        CheckOperand(x, m, Cols, nameof(x));
        CheckOperand(y, m, Rows, nameof(y));
        if (m == 0)
            return;
        int cols = Cols;
        OneDnnGemmKernel? bf16 = Bf16Kernel;
        ReadOnlySpan<float> input = x.AsSpan(0, m * cols);
        if (bf16 is not null)
        {
            // The bf16 activation the layer receives under a bf16 dtype, as fp32 values for the quantisation below.
            float* rounded = (t_roundedInput ??= new ScratchBuffer()).Get((long)m * cols);
            var roundedSpan = new Span<float>(rounded, m * cols);
            BFloat16.ToSingle(new ReadOnlySpan<ushort>(Bf16ComputeMatrix.RoundToBf16(x, (long)m * cols), m * cols), roundedSpan);
            input = roundedSpan;
        }
        // Every per-call array lives in the calling thread's scratch: activation-sized arrays allocated per call
        // reach the large object heap and kept QLoRA-8bit's peak memory above bf16 LoRA's.
        int* outlierColumns = (int*)(t_outlierColumns ??= new ScratchBuffer()).Get(cols);
        int outlierCount = OutlierColumns(input, m, outlierColumns);
        // Codes as fp32 integers, or under bf16 as bf16 bits (half the buffer).
        float* activationCodes = (t_activationCodes ??= new ScratchBuffer()).Get(bf16 is null ? (long)m * cols : ((long)m * cols + 1) / 2);
        float* activationAbsmax = (t_activationAbsmax ??= new ScratchBuffer()).Get(m);
        QuantizeActivations(input, m, outlierColumns, outlierCount, activationCodes, bf16 is not null, activationAbsmax);

        float* outlierInputs = null;
        if (outlierCount > 0)
        {
            outlierInputs = (t_outlierInputs ??= new ScratchBuffer()).Get((long)m * outlierCount);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < outlierCount; j++)
                    outlierInputs[(long)i * outlierCount + j] = input[i * cols + outlierColumns[j]];
            if (bf16 is not null)
                ToBf16InPlace(outlierInputs, (long)m * outlierCount);
        }

        IGemmKernel gemm = GemmKernels.Default;
        int sliceCols = Math.Min(ExactSliceCols, cols);
        float* slice = (t_slice ??= new ScratchBuffer()).Get((long)TileRows * Math.Max(sliceCols, outlierCount));
        float* partial = (t_partial ??= new ScratchBuffer()).Get((long)m * TileRows);
        int* accumulator = (int*)(t_accumulator ??= new ScratchBuffer()).Get((long)m * TileRows);
        fixed (float* py = y)
            for (int first = 0; first < Rows; first += TileRows)
            {
                int count = Math.Min(TileRows, Rows - first);
                new Span<int>(accumulator, m * count).Clear();
                for (int k0 = 0; k0 < cols; k0 += sliceCols)
                {
                    int width = Math.Min(sliceCols, cols - k0);
                    if (bf16 is not null)
                    {
                        WidenCodes(first, count, k0, width, slice, bf16: true, ForkForBf16Tiles);
                        bf16.GemmBf16(false, true, m, count, width, 1f, (ushort*)activationCodes + k0, cols, (ushort*)slice, width, 0f, partial, count);
                    }
                    else
                    {
                        WidenCodes(first, count, k0, width, slice, bf16: false, ForkForTiles(gemm));
                        gemm.Sgemm(false, true, m, count, width, 1f, activationCodes + k0, cols, slice, width, 0f, partial, count);
                    }
                    for (int i = 0; i < m * count; i++)
                        accumulator[i] += (int)partial[i];
                }
                for (int i = 0; i < m; i++)
                {
                    float* yRow = py + (long)i * Rows + first;
                    for (int r = 0; r < count; r++)
                        yRow[r] = accumulator[i * count + r] * (activationAbsmax[i] * _rowAbsmax[_firstRow + first + r]) * MatmulDequantScale;
                }
                if (outlierCount > 0)
                {
                    DequantizeColumns(first, count, outlierColumns, outlierCount, slice);
                    if (bf16 is not null)
                    {
                        ToBf16InPlace(slice, (long)count * outlierCount);
                        bf16.GemmBf16(false, true, m, count, outlierCount, 1f, (ushort*)outlierInputs, outlierCount,
                            (ushort*)slice, outlierCount, 1f, py + first, Rows);
                    }
                    else
                        gemm.Sgemm(false, true, m, count, outlierCount, 1f, outlierInputs, outlierCount,
                            slice, outlierCount, 1f, py + first, Rows);
                }
            }
    }

    /// <summary>
    /// Rounds count fp32 values to bf16 into the front of the same buffer (value i's bits land at byte 2i, never
    /// past value i's, so each value is read before it can be overwritten).
    /// </summary>
    private static void ToBf16InPlace(float* values, long count)
    {
        ushort* bits = (ushort*)values;
        for (long i = 0; i < count; i++)
            bits[i] = BFloat16.FromSingle(values[i]);
    }

    /// <summary>Writes the columns holding any |x| ≥ 6 (bitsandbytes' outlier_cols), ascending, and returns their count.</summary>
    private int OutlierColumns(ReadOnlySpan<float> x, int m, int* columns)
    {
        int cols = Cols;
        // The buffer first flags each column, then is compacted in place: the j-th outlier column c has j ≤ c.
        new Span<int>(columns, cols).Clear();
        for (int i = 0; i < m; i++)
        {
            ReadOnlySpan<float> row = x.Slice(i * cols, cols);
            for (int c = 0; c < cols; c++)
                if (MathF.Abs(row[c]) >= OutlierThreshold)
                    columns[c] = 1;
        }
        int count = 0;
        for (int c = 0; c < cols; c++)
            if (columns[c] != 0)
                columns[count++] = c;
        return count;
    }

    /// <summary>
    /// Row-wise int8 activations held as fp32 integers, or as their bf16 bits when <paramref name="bf16"/> (exact: at
    /// most 8 significant bits): the row absmax ignores outlier elements (bitsandbytes zeroes them before taking it),
    /// and whole outlier columns are coded 0.
    /// </summary>
    private void QuantizeActivations(ReadOnlySpan<float> x, int m, int* outlierColumns, int outlierCount, float* codes, bool bf16, float* absmax)
    {
        int cols = Cols;
        for (int i = 0; i < m; i++)
        {
            ReadOnlySpan<float> row = x.Slice(i * cols, cols);
            float max = 0f;
            foreach (float value in row)
            {
                float magnitude = MathF.Abs(value);
                if (magnitude < OutlierThreshold)
                    max = MathF.Max(max, magnitude);
            }
            absmax[i] = max;
            float factor = 127f / max;
            if (bf16)
            {
                ushort* target = (ushort*)codes + (long)i * cols;
                for (int c = 0; c < cols; c++)
                    target[c] = max == 0f ? (ushort)0 : (ushort)(BitConverter.SingleToUInt32Bits(MathF.Round(row[c] * factor, MidpointRounding.ToEven)) >> 16);
                for (int j = 0; j < outlierCount; j++)
                    target[outlierColumns[j]] = 0;
            }
            else
            {
                float* target = codes + (long)i * cols;
                for (int c = 0; c < cols; c++)
                    target[c] = max == 0f ? 0f : MathF.Round(row[c] * factor, MidpointRounding.ToEven);
                for (int j = 0; j < outlierCount; j++)
                    target[outlierColumns[j]] = 0f;
            }
        }
    }

    /// <summary>
    /// Weight codes of rows [first, first + count), columns [k0, k0 + width) as fp32 integers, or as bf16 bits when
    /// <paramref name="bf16"/> (count × width).
    /// </summary>
    private void WidenCodes(int first, int count, int k0, int width, float* destination, bool bf16, bool parallel)
    {
        int cols = Cols;
        first += _firstRow;
        sbyte[] codes = _codes;
        int tasks = parallel ? Math.Min(count, 4 * GemmThreadPool.Shared.Threads) : 1;
        int per = (count + tasks - 1) / tasks;
        GemmThreadPool.Shared.For((count + per - 1) / per, task =>
        {
            int end = Math.Min(count, (task + 1) * per);
            fixed (sbyte* source = codes)
                for (int r = task * per; r < end; r++)
                {
                    sbyte* row = source + (long)(first + r) * cols + k0;
                    if (bf16)
                        WidenCodesRowBf16(row, width, (ushort*)destination + (long)r * width);
                    else
                        WidenCodesRow(row, width, destination + (long)r * width);
                }
        });
    }

    /// <summary>Dequantised weight columns <paramref name="columns"/> of rows [first, first + count) (count × columns).</summary>
    private void DequantizeColumns(int first, int count, int* columns, int columnCount, float* destination)
    {
        int cols = Cols;
        first += _firstRow;
        for (int r = 0; r < count; r++)
        {
            float scale = _rowAbsmax[first + r];
            for (int j = 0; j < columnCount; j++)
                destination[(long)r * columnCount + j] = _codes[(first + r) * cols + columns[j]] * scale * VectorDequantScale;
        }
    }
}
