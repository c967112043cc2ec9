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
    /// Target size of one dequantised tile (floats). Large enough that the GEMM's per-call packing of the
    /// activations is amortised over many weight rows, small enough to stay in the last-level cache.
    /// </summary>
    private const int TileElements = 1 << 18;

    [ThreadStatic] private static ScratchBuffer? t_tile;

    protected TiledFrozenMatrix(int rows, int cols)
    {
        if (rows <= 0 || cols <= 0)
            throw new ArgumentException($"a quantised matrix needs positive dimensions, not {rows}×{cols}");
        Rows = rows;
        Cols = cols;
        TileRows = Math.Clamp(TileElements / cols / 16 * 16, 16, rows);
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
            DequantizeRowsParallel(firstRow, count, target);
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
                DequantizeRowsParallel(first, count, tile);
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
                DequantizeRowsParallel(first, count, tile);
                float beta = first == 0 && !accumulate ? 0f : 1f;
                gemm.Sgemm(false, false, m, Cols, count, 1f, pdy + first, Rows, tile, Cols, beta, pdx, Cols);
            }
    }

    /// <summary>The calling thread's tile buffer (TileRows × Cols floats).</summary>
    protected float* Tile() => (t_tile ??= new ScratchBuffer()).Get((long)TileRows * Cols);

    /// <summary>Dequantises rows [firstRow, firstRow + count) into destination, split across the engine's threads.</summary>
    protected void DequantizeRowsParallel(int firstRow, int count, float* destination)
    {
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

    protected static void CheckOperand(float[] array, int m, int width, string name)
    {
        ArgumentNullException.ThrowIfNull(array, name);
        if (m < 0)
            throw new ArgumentOutOfRangeException(nameof(m), $"row count must not be negative, not {m}");
        if (array.Length < (long)m * width)
            throw new ArgumentException($"{name} holds {array.Length} values, need {m}×{width} = {(long)m * width}", name);
    }
}
