namespace SharpTune.Data.Cleaning;

/// <summary>
/// How MinHash LSH splits a signature: <see cref="Bands"/> bands of <see cref="Rows"/> positions; two records become
/// candidates when any band is equal, which happens with probability 1 − (1 − s^r)^b at Jaccard similarity s.
/// </summary>
public readonly record struct LshBands(int Bands, int Rows)
{
    /// <summary>
    /// datasketch's choice (MinHashLSH's _optimal_param, weights 0.5/0.5): the (b, r) with b·r ≤ numPerm that
    /// minimises the false-positive area (the candidate probability integrated over [0, threshold]) plus the
    /// false-negative area (the miss probability integrated over [threshold, 1]). The areas are integrated by 5-point
    /// Gauss–Legendre on 256 pieces, exact to ~1e-15 for these polynomials of degree ≤ numPerm.
    /// </summary>
    public static LshBands Optimal(double threshold, int numPerm)
    {
        if (!(threshold > 0 && threshold < 1)) throw new ArgumentException($"--threshold must be between 0 and 1 (exclusive), got {threshold}");
        double best = double.PositiveInfinity;
        var optimal = new LshBands(1, 1);
        for (int b = 1; b <= numPerm; b++)
            for (int r = 1; r <= numPerm / b; r++)
            {
                var candidate = new LshBands(b, r);
                double error = 0.5 * candidate.FalsePositiveArea(threshold) + 0.5 * candidate.FalseNegativeArea(threshold);
                if (error < best) (best, optimal) = (error, candidate);
            }
        return optimal;
    }

    /// <summary>The probability that two records of Jaccard similarity <paramref name="similarity"/> become candidates.</summary>
    public double CandidateProbability(double similarity) => 1 - Math.Pow(1 - Math.Pow(similarity, Rows), Bands);

    public double FalsePositiveArea(double threshold) => Integrate(CandidateProbability, 0, threshold);

    public double FalseNegativeArea(double threshold)
    {
        var bands = this;
        return Integrate(s => 1 - bands.CandidateProbability(s), threshold, 1);
    }

    public override string ToString() => $"{Bands} bands x {Rows} rows";

    private static readonly double[] s_nodes = [0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640, 0.9061798459386640];
    private static readonly double[] s_weights = [0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891];

    private static double Integrate(Func<double, double> f, double from, double to)
    {
        const int Pieces = 256;
        double width = (to - from) / Pieces, sum = 0;
        for (int piece = 0; piece < Pieces; piece++)
        {
            double middle = from + (piece + 0.5) * width;
            for (int i = 0; i < s_nodes.Length; i++) sum += s_weights[i] * f(middle + 0.5 * width * s_nodes[i]);
        }
        return sum * 0.5 * width;
    }
}
