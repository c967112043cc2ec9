using System.Runtime.InteropServices;
using SharpTune.Engine;

namespace SharpTune.Tests.Training;

/// <summary>StoredMatrix's products against a naive double-precision loop over the widened stored values.</summary>
public sealed unsafe class StoredMatrixTests
{
    /// <summary>A rows × cols matrix stored in dtype in native memory, with its exactly widened values.</summary>
    private sealed class Stored : IDisposable
    {
        public readonly void* Data;
        public readonly float[] Widened;
        public readonly StoredMatrix Matrix;

        public Stored(DType dtype, int rows, int cols, int seed)
        {
            var random = new Random(seed);
            var values = new float[rows * cols];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
            int size = DTypeInfo.SizeOf(dtype);
            Data = NativeMemory.Alloc((nuint)(values.Length * size));
            switch (dtype)
            {
                case DType.BF16: BFloat16.FromSingle(values, new Span<ushort>(Data, values.Length)); break;
                case DType.F16: Float16.FromSingle(values, new Span<Half>(Data, values.Length)); break;
                default: values.CopyTo(new Span<float>(Data, values.Length)); break;
            }
            Matrix = new StoredMatrix(new WeightMatrix(Data, dtype, rows, cols));
            Widened = new float[values.Length];
            Matrix.ReadRows(0, rows, Widened);
        }

        public void Dispose() => NativeMemory.Free(Data);
    }

    private static float[] RandomArray(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [InlineData(DType.BF16, 5, 300, 70)]
    [InlineData(DType.F16, 3, 513, 33)]
    [InlineData(DType.F32, 4, 257, 40)]
    public void Both_products_match_a_naive_loop(DType dtype, int m, int rows, int cols)
    {
        using var w = new Stored(dtype, rows, cols, seed: 1);
        Assert.Equal((long)rows * cols * DTypeInfo.SizeOf(dtype), w.Matrix.StorageBytes);
        float[] x = RandomArray(m * cols, 2), dy = RandomArray(m * rows, 3), start = RandomArray(m * cols, 4);

        var y = new float[m * rows];
        w.Matrix.MultiplyTransposed(x, m, y);
        for (int i = 0; i < m; i++)
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += (double)x[i * cols + c] * w.Widened[r * cols + c];
                Assert.True(Math.Abs(sum - y[i * rows + r]) <= 1e-4, $"y[{i},{r}]: expected {sum}, got {y[i * rows + r]}");
            }

        var written = (float[])start.Clone();
        var accumulated = (float[])start.Clone();
        w.Matrix.Multiply(dy, m, written, accumulate: false);
        w.Matrix.Multiply(dy, m, accumulated, accumulate: true);
        for (int i = 0; i < m; i++)
            for (int c = 0; c < cols; c++)
            {
                double sum = 0;
                for (int r = 0; r < rows; r++) sum += (double)dy[i * rows + r] * w.Widened[r * cols + c];
                int at = i * cols + c;
                Assert.True(Math.Abs(sum - written[at]) <= 1e-4, $"dx[{i},{c}]: expected {sum}, got {written[at]}");
                Assert.True(Math.Abs(sum + start[at] - accumulated[at]) <= 1e-4, $"dx+[{i},{c}]: expected {sum + start[at]}, got {accumulated[at]}");
            }
    }

    [Fact]
    public void ReadRows_widens_the_requested_rows_and_refuses_others()
    {
        using var w = new Stored(DType.BF16, 10, 6, seed: 5);
        var rows = new float[2 * 6];
        w.Matrix.ReadRows(7, 2, rows);
        Assert.Equal(w.Widened.AsSpan(7 * 6, 12).ToArray(), rows);
        ushort first = ((ushort*)w.Data)[7 * 6];
        Assert.Equal(BFloat16.ToSingle(first), rows[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => w.Matrix.ReadRows(9, 2, new float[12]));
        Assert.Throws<ArgumentException>(() => w.Matrix.ReadRows(0, 2, new float[11]));
    }
}
