using SharpTune.Engine;
using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

internal static unsafe class QuantTestSupport
{
    public static FourBitMatrix FourBit(float[] weight, int rows, int cols, FourBitType type, bool doubleQuantization)
    {
        fixed (float* p = weight)
            return FourBitMatrix.Quantize(new WeightMatrix(p, DType.F32, rows, cols), type, doubleQuantization);
    }

    public static Int8Matrix Int8(float[] weight, int rows, int cols)
    {
        fixed (float* p = weight)
            return Int8Matrix.Quantize(new WeightMatrix(p, DType.F32, rows, cols));
    }

    public static IFrozenMatrix Quantize(float[] weight, int rows, int cols, QuantizationOptions options)
    {
        fixed (float* p = weight)
            return Quantizer.Quantize(new WeightMatrix(p, DType.F32, rows, cols), options);
    }

    public static float[] Gaussian(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }

    public static float[] ReadAll(IFrozenMatrix matrix)
    {
        var values = new float[matrix.Rows * matrix.Cols];
        matrix.ReadRows(0, matrix.Rows, values);
        return values;
    }

    /// <summary>y = x · Wᵀ in double.</summary>
    public static double[] NaiveTransposed(float[] x, int m, float[] w, int rows, int cols)
    {
        var y = new double[m * rows];
        for (int i = 0; i < m; i++)
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++)
                    sum += (double)x[i * cols + c] * w[r * cols + c];
                y[i * rows + r] = sum;
            }
        return y;
    }

    /// <summary>dx = dy · W in double.</summary>
    public static double[] Naive(float[] dy, int m, float[] w, int rows, int cols)
    {
        var dx = new double[m * cols];
        for (int i = 0; i < m; i++)
            for (int r = 0; r < rows; r++)
            {
                double g = dy[i * rows + r];
                for (int c = 0; c < cols; c++)
                    dx[i * cols + c] += g * w[r * cols + c];
            }
        return dx;
    }

    /// <summary>max |actual − expected| / max |expected|.</summary>
    public static double RelativeMaxError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        double worst = 0, scale = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return worst / scale;
    }
}
