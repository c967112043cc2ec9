using System.Globalization;

namespace SharpTune.Reporting;

/// <summary>Tick positions at "nice" numbers and their labels, printed with just the decimals the step needs.</summary>
internal sealed record AxisTicks(IReadOnlyList<double> Values, IReadOnlyList<string> Labels, double Step)
{
    // The step mantissas of matplotlib's MaxNLocator ([1, 2, 2.5, 5, 10]), so ticks read as people expect.
    private static readonly double[] Mantissas = [1, 2, 2.5, 5];

    /// <summary>
    /// The ticks inside [min, max] with the smallest nice step that gives at most <paramref name="maxCount"/>
    /// intervals; <paramref name="integers"/> keeps steps whole (training steps are integers).
    /// </summary>
    public static AxisTicks Compute(double min, double max, int maxCount, bool integers)
    {
        double smallest = (max - min) / maxCount;
        int exponent = (int)Math.Floor(Math.Log10(smallest));
        for (; ; exponent++)
            foreach (double mantissa in Mantissas)
            {
                double step = Scale(mantissa, exponent);
                bool whole = exponent > 0 || (exponent == 0 && mantissa != 2.5);
                if (step < smallest || (integers && !whole)) continue;
                int decimals = Math.Max(0, -exponent + (mantissa == 2.5 ? 1 : 0));
                var values = new List<double>();
                var labels = new List<string>();
                for (long k = (long)Math.Ceiling(min / step - 1e-9); k <= (long)Math.Floor(max / step + 1e-9); k++)
                {
                    double value = Scale(k * mantissa, exponent);
                    values.Add(value);
                    labels.Add(value.ToString("F" + decimals, CultureInfo.InvariantCulture));
                }
                return new AxisTicks(values, labels, step);
            }
    }

    // Divides for negative exponents because 10^-k is inexact while k·m / 10^k rounds to the nearest tick value.
    private static double Scale(double mantissa, int exponent) =>
        exponent >= 0 ? mantissa * Math.Pow(10, exponent) : mantissa / Math.Pow(10, -exponent);
}
