using SharpTune.Engine;

namespace SharpTune.Quantization;

/// <summary>
/// A quantised frozen matrix multiplied tile by tile: a band of rows is dequantised into a per-thread fp32
/// buffer (in parallel on the engine's pool) and handed to the process-wide Sgemm, so no fp32 copy of the whole
/// matrix ever exists. Subclasses only say how to widen a range of rows.
/// </summary>
public abstract unsafe class TiledFrozenMatrix : IFrozenMatrix
{
    /// <summary>
    /// Weight rows per dequantised tile, as the engine's bf16 weight staging uses: 256 × K fp32 (5 MiB at
    /// K = 4864) is still cache-warm when the GEMM consumes it, and each call is large enough to run at full speed.
    /// </summary>
    private const int RowsPerTile = 256;

    [ThreadStatic] private static ScratchBuffer? t_tile;

    protected TiledFrozenMatrix(int rows, int cols)
    {
        if (rows <= 0 || cols <= 0)
            throw new ArgumentException($"a quantised matrix needs positive dimensions, not {rows}×{cols}");
        Rows = rows;
        Cols = cols;
        TileRows = Math.Min(rows, RowsPerTile);
    }

    public int Rows { get; }
    public int Cols { get; }
    public abstract long StorageBytes { get; }

    /// <summary>Rows dequantised per tile in the products.</summary>
    protected int TileRows { get; }

    /// <summary>Writes rows [firstRow, firstRow + count) widened to fp32 into destination; called on one thread.</summary>
    protected abstract void DequantizeRows(int firstRow, int count, Span<float> destination);

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

    /// <summary>
    /// Whether tiles between GEMM calls are dequantised on the engine's pool. Only with the managed kernel, which
    /// runs on that same pool: an OpenMP library (oneDNN, OpenBLAS) keeps its team spinning after each call, and a
    /// pool fork between calls then fights those spinning threads for the cores (measured 3–20× slower on 2 cores),
    /// so there the calling thread widens the tile alone, as the engine's bf16 weight staging does.
    /// </summary>
    protected static bool ForkForTiles(IGemmKernel gemm) => gemm is ManagedGemmKernel;

    /// <summary>Dequantises rows [firstRow, firstRow + count) into destination, on the pool when <paramref name="parallel"/>.</summary>
    protected void DequantizeRowsParallel(int firstRow, int count, float* destination, bool parallel)
    {
        if (!parallel)
        {
            DequantizeRows(firstRow, count, new Span<float>(destination, count * Cols));
            return;
        }
        int threads = GemmThreadPool.Shared.Threads;
        // A few tasks per thread so a core busy elsewhere takes fewer; never slices thinner than one row.
        int tasks = Math.Min(count, Math.Max(1, Math.Min(4 * threads, (int)((long)count * Cols / 8192))));
        int rowsPerTask = (count + tasks - 1) / tasks;
        tasks = (count + rowsPerTask - 1) / rowsPerTask;
        int cols = Cols;
        GemmThreadPool.Shared.For(tasks, task =>
        {
            int first = task * rowsPerTask;
            int rows = Math.Min(rowsPerTask, count - first);
            DequantizeRows(firstRow + first, rows, new Span<float>(destination + (long)first * cols, rows * cols));
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

        public StackedMatrix(IReadOnlyList<TiledFrozenMatrix> parts) : base(parts.Sum(p => p.Rows), parts[0].Cols)
        {
            if (parts.Any(p => p.Cols != Cols || p is Int8Matrix))
                throw new ArgumentException("stacked matrices need the same width and a dequantise-then-GEMM product");
            _parts = parts;
        }

        /// <summary>The parts' storage: the stack itself holds none.</summary>
        public override long StorageBytes => _parts.Sum(p => p.StorageBytes);

        protected override void DequantizeRows(int firstRow, int count, Span<float> destination)
        {
            int partFirst = 0;
            foreach (var part in _parts)
            {
                int from = Math.Max(firstRow, partFirst), to = Math.Min(firstRow + count, partFirst + part.Rows);
                if (from < to)
                    part.DequantizeRows(from - partFirst, to - from, destination.Slice((from - firstRow) * Cols, (to - from) * Cols));
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
