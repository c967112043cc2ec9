using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>
/// A quantised frozen matrix multiplied tile by tile: a band of rows is dequantised into a per-thread fp32
/// buffer (in parallel on the engine's pool) and handed to the process-wide Sgemm, so no fp32 copy of the whole
/// matrix ever exists. Subclasses only say how to widen a range of rows. With a <see cref="Bf16Kernel"/>
/// (<c>bf16: true</c>, as bitsandbytes with <c>bnb_4bit_compute_dtype=bfloat16</c>) the tiles are dequantised straight
/// into bf16 and both products run on that kernel's bf16×bf16→fp32 GEMM, the activations rounded to bf16 once per
/// product as <see cref="Bf16ComputeMatrix"/> rounds them.
/// </summary>
public abstract unsafe class TiledFrozenMatrix : IFrozenMatrix
{
    /// <summary>
    /// Weight rows per dequantised tile, as the engine's bf16 weight staging uses: 256 × K fp32 (5 MiB at
    /// K = 4864) is still cache-warm when the GEMM consumes it, and each call is large enough to run at full speed.
    /// </summary>
    private const int RowsPerTile = 256;

    /// <summary>fp32 values staged per rounding chunk of a bf16 tile: 32 KiB, within a core's L1/L2.</summary>
    private const int RoundingChunkValues = 8192;

    [ThreadStatic] private static ScratchBuffer? t_tile;
    [ThreadStatic] private static ScratchBuffer? t_roundingChunk;

    protected TiledFrozenMatrix(int rows, int cols, OneDnnGemmKernel? bf16Kernel)
    {
        if (rows <= 0 || cols <= 0)
            throw new ArgumentException($"a quantised matrix needs positive dimensions, not {rows}×{cols}");
        if (bf16Kernel is { SupportsBf16Gemm: false })
            throw new ArgumentException($"{bf16Kernel.LibraryName} has no usable bf16 GEMM on this CPU", nameof(bf16Kernel));
        Rows = rows;
        Cols = cols;
        TileRows = Math.Min(rows, RowsPerTile);
        Bf16Kernel = bf16Kernel;
    }

    public int Rows { get; }
    public int Cols { get; }
    public abstract long StorageBytes { get; }

    /// <summary>The kernel both products run on in bf16 (<c>bf16: true</c> where the machine has a bf16 GEMM); null: fp32.</summary>
    public OneDnnGemmKernel? Bf16Kernel { get; }

    /// <summary>Rows dequantised per tile in the products.</summary>
    protected int TileRows { get; }

    /// <summary>Writes rows [firstRow, firstRow + count) widened to fp32 into destination; called on one thread.</summary>
    protected abstract void DequantizeRows(int firstRow, int count, Span<float> destination);

    /// <summary>
    /// Writes rows [firstRow, firstRow + count) in fp32 as bitsandbytes computes them before casting to a bf16
    /// compute dtype (and as dx = dy·W multiplies them in bf16); called on one thread. The fp32 dequantisation unless
    /// a format computes that cast's input otherwise.
    /// </summary>
    protected virtual void DequantizeRowsForBf16(int firstRow, int count, Span<float> destination) => DequantizeRows(firstRow, count, destination);

    /// <summary>
    /// <see cref="DequantizeRowsForBf16"/> rounded to bf16 (nearest, ties to even, as torch's cast) into destination,
    /// a few rows at a time through a buffer that stays in the core's cache, so no fp32 tile is written.
    /// </summary>
    private void DequantizeRowsBf16(int firstRow, int count, Span<ushort> destination)
    {
        int cols = Cols;
        int rowsPerChunk = Math.Max(1, RoundingChunkValues / cols);
        float* chunk = (t_roundingChunk ??= new ScratchBuffer()).Get((long)rowsPerChunk * cols);
        for (int r = 0; r < count; r += rowsPerChunk)
        {
            int rows = Math.Min(rowsPerChunk, count - r);
            var values = new Span<float>(chunk, rows * cols);
            DequantizeRowsForBf16(firstRow + r, rows, values);
            BFloat16.FromSingle(values, destination.Slice(r * cols, rows * cols));
        }
    }

    public void ReadRows(int firstRow, int count, Span<float> destination)
    {
        if (firstRow < 0 || count < 0 || firstRow + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(firstRow), $"rows [{firstRow}, {firstRow + count}) are outside the matrix's {Rows} rows");
        if (destination.Length < (long)count * Cols)
            throw new ArgumentException($"destination holds {destination.Length} values, need {(long)count * Cols}", nameof(destination));
        fixed (float* target = destination)
            DequantizeRowsParallel(firstRow, count, target, parallel: true);
    }

    public virtual void MultiplyTransposed(float[] x, int m, float[] y)
    {
        CheckOperand(x, m, Cols, nameof(x));
        CheckOperand(y, m, Rows, nameof(y));
        if (m == 0)
            return;
        if (Bf16Kernel is { } bf16)
        {
            ushort* rounded = Bf16ComputeMatrix.RoundToBf16(x, (long)m * Cols);
            ushort* bf16Tile = Bf16Tile();
            fixed (float* py = y)
                for (int first = 0; first < Rows; first += TileRows)
                {
                    int count = Math.Min(TileRows, Rows - first);
                    DequantizeRowsParallel(first, count, bf16Tile, ForkForBf16Tiles);
                    bf16.GemmBf16(false, true, m, count, Cols, 1f, rounded, Cols, bf16Tile, Cols, 0f, py + first, Rows);
                }
            return;
        }
        float* tile = Tile();
        IGemmKernel gemm = GemmKernels.Default;
        fixed (float* px = x, py = y)
            for (int first = 0; first < Rows; first += TileRows)
            {
                int count = Math.Min(TileRows, Rows - first);
                DequantizeRowsParallel(first, count, tile, ForkForTiles(gemm));
                gemm.Sgemm(false, true, m, count, Cols, 1f, px, Cols, tile, Cols, 0f, py + first, Rows);
            }
    }

    public void Multiply(float[] dy, int m, float[] dx, bool accumulate)
    {
        CheckOperand(dy, m, Rows, nameof(dy));
        CheckOperand(dx, m, Cols, nameof(dx));
        if (m == 0)
            return;
        if (Bf16Kernel is { } bf16)
        {
            ushort* rounded = Bf16ComputeMatrix.RoundToBf16(dy, (long)m * Rows);
            ushort* bf16Tile = Bf16Tile();
            fixed (float* pdx = dx)
                for (int first = 0; first < Rows; first += TileRows)
                {
                    int count = Math.Min(TileRows, Rows - first);
                    DequantizeRowsParallel(first, count, bf16Tile, ForkForBf16Tiles);
                    float beta = first == 0 && !accumulate ? 0f : 1f;
                    bf16.GemmBf16(false, false, m, Cols, count, 1f, rounded + first, Rows, bf16Tile, Cols, beta, pdx, Cols);
                }
            return;
        }
        float* tile = Tile();
        IGemmKernel gemm = GemmKernels.Default;
        fixed (float* pdy = dy, pdx = dx)
            for (int first = 0; first < Rows; first += TileRows)
            {
                int count = Math.Min(TileRows, Rows - first);
                DequantizeRowsParallel(first, count, tile, ForkForTiles(gemm));
                float beta = first == 0 && !accumulate ? 0f : 1f;
                gemm.Sgemm(false, false, m, Cols, count, 1f, pdy + first, Rows, tile, Cols, beta, pdx, Cols);
            }
    }

    /// <summary>The calling thread's tile buffer (TileRows × Cols floats).</summary>
    protected float* Tile() => (t_tile ??= new ScratchBuffer()).Get((long)TileRows * Cols);

    /// <summary>The same buffer holding a bf16 tile (TileRows × Cols bf16 values, half the bytes).</summary>
    private ushort* Bf16Tile() => (ushort*)(t_tile ??= new ScratchBuffer()).Get(((long)TileRows * Cols + 1) / 2);

    /// <summary>
    /// Whether tiles between GEMM calls are dequantised on the engine's pool. Only with the managed kernel, which
    /// runs on that same pool: an OpenMP library (oneDNN, OpenBLAS) keeps its team spinning after each call, and a
    /// pool fork between calls then fights those spinning threads for the cores (measured 3–20× slower on 2 cores),
    /// so there the calling thread widens the tile alone, as the engine's bf16 weight staging does.
    /// </summary>
    protected static bool ForkForTiles(IGemmKernel gemm) => gemm is ManagedGemmKernel;

    /// <summary>
    /// bf16 tiles are dequantised on the engine's pool between oneDNN's bf16 GEMM calls: its OpenMP team is told to
    /// sleep between calls (OMP_WAIT_POLICY=PASSIVE, see NativeLibraries), so the fork finds the cores free. Measured
    /// on 2 cores (QLoRA-NF4, 1.8B shape, seq 512, checkpointing): the same CPU seconds per step as dequantising on
    /// the calling thread alone, and no slower in wall time.
    /// </summary>
    protected const bool ForkForBf16Tiles = true;

    /// <summary>Dequantises rows [firstRow, firstRow + count) into destination, on the pool when <paramref name="parallel"/>.</summary>
    protected void DequantizeRowsParallel(int firstRow, int count, float* destination, bool parallel)
    {
        int cols = Cols;
        ForRowSlices(count, parallel, (first, rows) =>
            DequantizeRows(firstRow + first, rows, new Span<float>(destination + (long)first * cols, rows * cols)));
    }

    /// <summary>The bf16 tile of rows [firstRow, firstRow + count) (<see cref="DequantizeRowsBf16"/>), on the pool when <paramref name="parallel"/>.</summary>
    protected void DequantizeRowsParallel(int firstRow, int count, ushort* destination, bool parallel)
    {
        int cols = Cols;
        ForRowSlices(count, parallel, (first, rows) =>
            DequantizeRowsBf16(firstRow + first, rows, new Span<ushort>(destination + (long)first * cols, rows * cols)));
    }

    /// <summary>Runs dequantize(first, rows) over slices covering rows [0, count), on the pool when <paramref name="parallel"/>.</summary>
    private void ForRowSlices(int count, bool parallel, Action<int, int> dequantize)
    {
        if (!parallel)
        {
            dequantize(0, count);
            return;
        }
        int threads = GemmThreadPool.Shared.Threads;
        // A few tasks per thread so a core busy elsewhere takes fewer; never slices thinner than one row.
        int tasks = Math.Min(count, Math.Max(1, Math.Min(4 * threads, (int)((long)count * Cols / 8192))));
        int rowsPerTask = (count + tasks - 1) / tasks;
        tasks = (count + rowsPerTask - 1) / rowsPerTask;
        GemmThreadPool.Shared.For(tasks, task =>
        {
            int first = task * rowsPerTask;
            dequantize(first, Math.Min(rowsPerTask, count - first));
        });
    }

    /// <summary>
    /// The parts' rows one after another as one matrix, multiplied tile by tile like any other: its tiles are
    /// dequantised from the parts, which keep their own storage, so a product over several Linears that read one
    /// input is one GEMM without a second copy of their weights. For parts whose product is this class's
    /// dequantise-then-GEMM (not <see cref="Int8Matrix"/>, whose forward is LLM.int8's own).
    /// </summary>
    public static TiledFrozenMatrix Stack(IReadOnlyList<TiledFrozenMatrix> parts) => new StackedMatrix(parts);

    private sealed class StackedMatrix : TiledFrozenMatrix
    {
        private readonly IReadOnlyList<TiledFrozenMatrix> _parts;

        public StackedMatrix(IReadOnlyList<TiledFrozenMatrix> parts) : base(parts.Sum(p => p.Rows), parts[0].Cols, parts[0].Bf16Kernel)
        {
            if (parts.Any(p => p.Cols != Cols || p is Int8Matrix || p.Bf16Kernel != Bf16Kernel))
                throw new ArgumentException("stacked matrices need the same width, the same compute dtype and a dequantise-then-GEMM product");
            _parts = parts;
        }

        /// <summary>The parts' storage: the stack itself holds none.</summary>
        public override long StorageBytes => _parts.Sum(p => p.StorageBytes);

        protected override void DequantizeRows(int firstRow, int count, Span<float> destination) =>
            FromParts(firstRow, count, destination, forBf16: false);

        protected override void DequantizeRowsForBf16(int firstRow, int count, Span<float> destination) =>
            FromParts(firstRow, count, destination, forBf16: true);

        private void FromParts(int firstRow, int count, Span<float> destination, bool forBf16)
        {
            int partFirst = 0;
            foreach (var part in _parts)
            {
                int from = Math.Max(firstRow, partFirst), to = Math.Min(firstRow + count, partFirst + part.Rows);
                if (from < to)
                {
                    var target = destination.Slice((from - firstRow) * Cols, (to - from) * Cols);
                    if (forBf16) part.DequantizeRowsForBf16(from - partFirst, to - from, target);
                    else part.DequantizeRows(from - partFirst, to - from, target);
                }
                partFirst += part.Rows;
            }
        }
    }

    protected static void CheckOperand(float[] array, int m, int width, string name)
    {
        ArgumentNullException.ThrowIfNull(array, name);
        if (m < 0)
            throw new ArgumentOutOfRangeException(nameof(m), $"row count must not be negative, not {m}");
        if (array.Length < (long)m * width)
            throw new ArgumentException($"{name} holds {array.Length} values, need {m}×{width} = {(long)m * width}", name);
    }
}
