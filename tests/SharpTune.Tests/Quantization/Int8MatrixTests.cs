using SharpTune.Engine;
using SharpTune.Quantization;
using static SharpTune.Tests.Quantization.QuantTestSupport;

namespace SharpTune.Tests.Quantization;

public class Int8MatrixTests
{
    [Fact]
    public void Weights_RowwiseAbsmaxRoundHalfToEven()
    {
        // Row 0 absmax 2, factor 63.5: 1 → 63.5 → 64 (tie to even), −0.5 → −31.75 → −32, 0.25 → 15.875 → 16, 2 → 127.
        // Row 1 absmax 0.5, factor 254: 0.5 → 127, −0.25 → −63.5 → −64 (tie to even), 0.001 → 0.254 → 0; zero row → 0.
        float[] w = [1f, -0.5f, 0.25f, 2f, 0.5f, -0.25f, 0.001f, 0f, 0f, 0f, 0f, 0f];
        Int8Matrix q = Int8(w, 3, 4);
        Assert.Equal([2f, 0.5f, 0f], q.RowAbsmax.ToArray());
        Assert.Equal([64, -32, 16, 127, 127, -64, 0, 0, 0, 0, 0, 0], q.Codes.ToArray().Select(c => (int)c));
        float[] restored = ReadAll(q);
        Assert.Equal(64 * 2f * 7.874015718698502e-3f, restored[0]);
        Assert.Equal(1.007874f, restored[0], 5);
        Assert.Equal(12 + 3 * 4, q.StorageBytes);
    }

    [Fact]
    public void Forward_WithoutOutliers_IsTheExactInt8ProductRescaled()
    {
        float[] w = [1f, -0.5f, 0.25f, 2f, 0.5f, -0.25f, 0.1f, 0.3f];
        Int8Matrix q = Int8(w, 2, 4);
        // x row 0 absmax 3, factor 127/3: 1 → 42.33 → 42, 2 → 84.67 → 85, −3 → −127, 0.5 → 21.17 → 21.
        // x row 1 absmax 1, factor 127: 0.1 → 12.7 → 13, −1 → −127, 0.25 → 31.75 → 32, 0 → 0.
        float[] x = [1f, 2f, -3f, 0.5f, 0.1f, -1f, 0.25f, 0f];
        int[] xq = [42, 85, -127, 21, 13, -127, 32, 0];
        float[] xAbsmax = [3f, 1f];
        var y = new float[4];
        q.MultiplyTransposed(x, 2, y);
        sbyte[] wq = q.Codes.ToArray();
        for (int i = 0; i < 2; i++)
            for (int r = 0; r < 2; r++)
            {
                int acc = 0;
                for (int c = 0; c < 4; c++)
                    acc += xq[i * 4 + c] * wq[r * 4 + c];
                Assert.Equal(acc * (xAbsmax[i] * q.RowAbsmax[r]) * 6.200124e-05f, y[i * 2 + r]);
            }
        // Close to the fp32 product: row 0 · w row 0 = 1 − 1 − 0.75 + 1 = 0.25.
        Assert.Equal(0.25f, y[0], 1);
    }

    [Fact]
    public void Forward_OutlierColumn_IsTheFp32ProductWithTheDequantisedColumn()
    {
        float[] w = Gaussian(5 * 4, 3);
        Int8Matrix q = Int8(w, 5, 4);
        float[] dequantised = ReadAll(q);
        // Only column 1 is non-zero and it holds an outlier (|8| ≥ 6): no int8 part at all.
        float[] x = [0f, 8f, 0f, 0f, 0f, -0.5f, 0f, 0f];
        var y = new float[2 * 5];
        q.MultiplyTransposed(x, 2, y);
        for (int r = 0; r < 5; r++)
        {
            Assert.Equal(8f * dequantised[r * 4 + 1], y[r]);
            Assert.Equal(-0.5f * dequantised[r * 4 + 1], y[5 + r]);
        }
    }

    [Fact]
    public void Forward_MixedOutliers_Int8PartPlusFp32Columns()
    {
        const int rows = 3, cols = 4;
        float[] w = Gaussian(rows * cols, 4);
        Int8Matrix q = Int8(w, rows, cols);
        float[] dequantised = ReadAll(q);
        // Column 2 has an outlier in row 0 only; row 1's value there (0.75) still counts toward its absmax
        // (bitsandbytes zeroes outlier elements, not columns, before taking it) but is coded 0 with the column.
        float[] x = [0.5f, -1f, 7f, 0.25f, 0.2f, 0.1f, 0.75f, -0.3f];
        float[] xAbsmax = [1f, 0.75f];
        var y = new float[2 * rows];
        q.MultiplyTransposed(x, 2, y);
        sbyte[] wq = q.Codes.ToArray();
        for (int i = 0; i < 2; i++)
            for (int r = 0; r < rows; r++)
            {
                int acc = 0;
                for (int c = 0; c < cols; c++)
                    if (c != 2)
                        acc += (int)MathF.Round(x[i * cols + c] * (127f / xAbsmax[i]), MidpointRounding.ToEven) * wq[r * cols + c];
                float int8Part = acc * (xAbsmax[i] * q.RowAbsmax[r]) * 6.200124e-05f;
                Assert.Equal(int8Part + x[i * cols + 2] * dequantised[r * cols + 2], y[i * rows + r], 6);
            }
    }

    [Fact]
    public void Products_LargeShapes_ExactInt8AcrossSlices_AndBackwardUsesTheDequantisedWeight()
    {
        // 2500 input columns: three exact fp32 slices of ≤ 1024; 300 rows: two 256-row tiles, the second partial.
        const int rows = 300, cols = 2500, m = 3;
        float[] w = Gaussian(rows * cols, 6, 0.05f);
        Int8Matrix q = Int8(w, rows, cols);
        float[] dequantised = ReadAll(q);
        float[] x = Gaussian(m * cols, 7);
        var y = new float[m * rows];
        q.MultiplyTransposed(x, m, y);

        sbyte[] wq = q.Codes.ToArray();
        for (int i = 0; i < m; i++)
        {
            float absmax = 0;
            for (int c = 0; c < cols; c++)
                if (Math.Abs(x[i * cols + c]) < 6f)
                    absmax = Math.Max(absmax, Math.Abs(x[i * cols + c]));
            for (int r = 0; r < rows; r++)
            {
                long acc = 0;
                for (int c = 0; c < cols; c++)
                    acc += (long)MathF.Round(x[i * cols + c] * (127f / absmax), MidpointRounding.ToEven) * wq[r * cols + c];
                Assert.Equal(acc * (absmax * q.RowAbsmax[r]) * 6.200124e-05f, y[i * rows + r]);
            }
        }
        Assert.InRange(RelativeMaxError(y, NaiveTransposed(x, m, w, rows, cols)), 1e-4, 0.05);

        float[] dy = Gaussian(m * rows, 8);
        var dx = new float[m * cols];
        q.Multiply(dy, m, dx, accumulate: false);
        Assert.True(RelativeMaxError(dx, Naive(dy, m, dequantised, rows, cols)) < 1e-5);
        Assert.InRange(RelativeMaxError(dx, Naive(dy, m, w, rows, cols)), 1e-5, 0.02);
    }

    [Fact]
    public void StorageBytes_OneByteAParamPlusRowScales()
    {
        Int8Matrix q = Int8(Gaussian(64 * 256, 1), 64, 256);
        Assert.Equal(64 * 256 + 64 * 4, q.StorageBytes);
    }
}
