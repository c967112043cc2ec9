using SharpTune.Engine;

namespace SharpTune.Peft.Lora;

/// <summary>
/// The decompositions PEFT's initialisations take of a weight, in double precision: the thin QR of
/// torch.linalg.qr (Householder reflections with LAPACK's signs), the SVD of torch.linalg.svd (one-sided Jacobi, so
/// exact to rounding), and torch.svd_lowrank's randomized SVD (Halko et al. 2009, algorithm 5.1, with its products on
/// the compute backend). Matrices are row-major arrays.
/// </summary>
internal static class MatrixDecompositions
{
    private const int MaxJacobiSweeps = 100;

    /// <summary>
    /// m [rows × cols] = Q·R with Q [rows × k] orthonormal and R [k × cols] upper triangular, k = min(rows, cols);
    /// R's diagonal carries LAPACK's signs (−sign of the pivot), as torch.linalg.qr returns it.
    /// </summary>
    public static (double[] Q, double[] R) Qr(double[] m, int rows, int cols)
    {
        int k = Math.Min(rows, cols);
        var a = (double[])m.Clone();
        var taus = new double[k];
        var vectors = new double[k][];
        for (int j = 0; j < k; j++)
        {
            double alpha = a[j * cols + j], tail = 0;
            for (int i = j + 1; i < rows; i++) tail += a[i * cols + j] * a[i * cols + j];
            var v = new double[rows - j];
            v[0] = 1;
            vectors[j] = v;
            if (tail == 0) continue;
            double beta = -Math.CopySign(Math.Sqrt(alpha * alpha + tail), alpha);
            taus[j] = (beta - alpha) / beta;
            for (int i = j + 1; i < rows; i++) v[i - j] = a[i * cols + j] / (alpha - beta);
            a[j * cols + j] = beta;
            for (int i = j + 1; i < rows; i++) a[i * cols + j] = 0;
            for (int c = j + 1; c < cols; c++)
            {
                double dot = 0;
                for (int i = j; i < rows; i++) dot += v[i - j] * a[i * cols + c];
                dot *= taus[j];
                for (int i = j; i < rows; i++) a[i * cols + c] -= dot * v[i - j];
            }
        }
        var r = new double[k * cols];
        for (int i = 0; i < k; i++)
            for (int c = i; c < cols; c++) r[i * cols + c] = a[i * cols + c];
        // Q = H_0 · … · H_{k−1} applied to the first k columns of the identity, last reflection first.
        var q = new double[rows * k];
        for (int i = 0; i < k; i++) q[i * k + i] = 1;
        for (int j = k - 1; j >= 0; j--)
        {
            if (taus[j] == 0) continue;
            var v = vectors[j];
            for (int c = 0; c < k; c++)
            {
                double dot = 0;
                for (int i = j; i < rows; i++) dot += v[i - j] * q[i * k + c];
                dot *= taus[j];
                for (int i = j; i < rows; i++) q[i * k + c] -= dot * v[i - j];
            }
        }
        return (q, r);
    }

    /// <summary>
    /// The thin SVD m [rows × cols] = U·diag(S)·Vᵀ, U [rows × k], S descending, V [cols × k], k = min(rows, cols), by
    /// one-sided Jacobi rotations of the columns of m (or of mᵀ when m is wide) until they are orthogonal.
    /// </summary>
    public static (double[] U, double[] S, double[] V) Svd(double[] m, int rows, int cols)
    {
        if (rows < cols)
        {
            var transposed = new double[cols * rows];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) transposed[j * rows + i] = m[i * cols + j];
            var (u, s, v) = Svd(transposed, cols, rows);
            return (v, s, u);
        }
        // Columns of m and of V, each a contiguous array.
        var columns = new double[cols][];
        var vColumns = new double[cols][];
        for (int j = 0; j < cols; j++)
        {
            columns[j] = new double[rows];
            for (int i = 0; i < rows; i++) columns[j][i] = m[i * cols + j];
            vColumns[j] = new double[cols];
            vColumns[j][j] = 1;
        }
        for (int sweep = 0; sweep < MaxJacobiSweeps; sweep++)
        {
            bool rotated = false;
            for (int p = 0; p < cols - 1; p++)
                for (int q = p + 1; q < cols; q++)
                {
                    double[] x = columns[p], y = columns[q];
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < rows; i++)
                    {
                        alpha += x[i] * x[i];
                        beta += y[i] * y[i];
                        gamma += x[i] * y[i];
                    }
                    if (gamma == 0 || Math.Abs(gamma) <= 1e-15 * Math.Sqrt(alpha * beta)) continue;
                    rotated = true;
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = Math.CopySign(1, zeta) / (Math.Abs(zeta) + Math.Sqrt(1 + zeta * zeta));
                    double c = 1 / Math.Sqrt(1 + t * t), s = c * t;
                    Rotate(x, y, c, s);
                    Rotate(vColumns[p], vColumns[q], c, s);
                }
            if (!rotated) break;
        }
        var norms = columns.Select(col => Math.Sqrt(col.Sum(v => v * v))).ToArray();
        var order = Enumerable.Range(0, cols).OrderByDescending(j => norms[j]).ToArray();
        var uOut = new double[rows * cols];
        var vOut = new double[cols * cols];
        var sOut = new double[cols];
        for (int k = 0; k < cols; k++)
        {
            int j = order[k];
            sOut[k] = norms[j];
            for (int i = 0; i < rows; i++) uOut[i * cols + k] = norms[j] == 0 ? 0 : columns[j][i] / norms[j];
            for (int i = 0; i < cols; i++) vOut[i * cols + k] = vColumns[j][i];
        }
        return (uOut, sOut, vOut);
    }

    private static void Rotate(double[] x, double[] y, double c, double s)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double xi = x[i], yi = y[i];
            x[i] = c * xi - s * yi;
            y[i] = s * xi + c * yi;
        }
    }

    /// <summary>
    /// torch.svd_lowrank(m, q, niter): the top q singular triplets from a Gaussian sketch refined by
    /// <paramref name="iterations"/> subspace iterations (each a product with mᵀ and with m, re-orthonormalised by QR),
    /// then the exact SVD of the q × cols projection. m [rows × cols] is float32, as PEFT passes it; U [rows × q],
    /// V [cols × q].
    /// </summary>
    public static unsafe (double[] U, double[] S, double[] V) RandomizedSvd(float[] m, int rows, int cols, int q, int iterations,
        SeededRandom random, IComputeBackend backend)
    {
        var sketch = new float[cols * q];
        for (int i = 0; i < sketch.Length; i++) sketch[i] = (float)random.NextGaussian();
        var product = new float[rows * q];
        var back = new float[cols * q];
        fixed (float* pm = m, pr = sketch, pp = product)
            backend.Gemm.Sgemm(false, false, rows, q, cols, 1f, pm, cols, pr, q, 0f, pp, q);
        var basis = OrthonormalBasis(product, rows, q);
        for (int iteration = 0; iteration < iterations; iteration++)
        {
            fixed (float* pm = m, pb = basis, pk = back)
                backend.Gemm.Sgemm(true, false, cols, q, rows, 1f, pm, cols, pb, q, 0f, pk, q);
            var backBasis = OrthonormalBasis(back, cols, q);
            fixed (float* pm = m, pb = backBasis, pp = product)
                backend.Gemm.Sgemm(false, false, rows, q, cols, 1f, pm, cols, pb, q, 0f, pp, q);
            basis = OrthonormalBasis(product, rows, q);
        }
        // B = Qᵀ·m [q × cols]; its SVD B = Ub·S·Vᵀ gives m ≈ (Q·Ub)·S·Vᵀ.
        var projected = new float[q * cols];
        fixed (float* pm = m, pb = basis, pj = projected)
            backend.Gemm.Sgemm(true, false, q, cols, rows, 1f, pb, q, pm, cols, 0f, pj, cols);
        var (ub, s, v) = Svd(projected.Select(x => (double)x).ToArray(), q, cols);
        int k = s.Length;
        var u = new double[rows * k];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < k; j++)
            {
                double sum = 0;
                for (int l = 0; l < q; l++) sum += basis[i * q + l] * ub[l * k + j];
                u[i * k + j] = sum;
            }
        return (u, s, v);
    }

    /// <summary>The Q of the thin QR of x [rows × cols], as float32 for the next product.</summary>
    private static float[] OrthonormalBasis(float[] x, int rows, int cols)
    {
        var (q, _) = Qr(x.Select(v => (double)v).ToArray(), rows, cols);
        return q.Select(v => (float)v).ToArray();
    }
}
