namespace SharpTune.Engine;

/// <summary>
/// A frozen bf16 weight multiplied in bf16 (<c>bf16: true</c>): the activations are rounded to bf16 (nearest, ties
/// to even) and both directions run on oneDNN's bf16×bf16→fp32 GEMM, so the products accumulate in fp32 as a
/// bf16 autocast does on a GPU. Where a CPU has AVX512-BF16 or AMX that GEMM runs at about twice fp32's rate; the
/// weights are used as stored, never widened. The memory behind <see cref="Matrix"/> belongs to the caller.
/// </summary>
public sealed unsafe class Bf16ComputeMatrix : IFrozenMatrix
{
    [ThreadStatic] private static ScratchBuffer? t_rounded;

    private readonly OneDnnGemmKernel _kernel;
    private readonly StoredMatrix _stored;

    public Bf16ComputeMatrix(WeightMatrix matrix, OneDnnGemmKernel kernel)
    {
        if (matrix.DType != DType.BF16) throw new ArgumentException($"bf16 compute needs a bf16 weight, got {matrix.DType}");
        if (!kernel.SupportsBf16Gemm) throw new ArgumentException($"{kernel.LibraryName} has no usable bf16 GEMM on this CPU");
        Matrix = matrix;
        _kernel = kernel;
        _stored = new StoredMatrix(matrix);
    }

    /// <summary>
    /// The kernel bf16 compute runs on: oneDNN when it is installed, its bf16 GEMM runs, and the CPU computes bf16
    /// natively; else null (training then computes in fp32). Without AVX512-BF16 or AMX oneDNN emulates the bf16
    /// GEMM at a fraction of fp32's speed (~58 against ~300 GFLOP/s measured on such a machine), so it is not used.
    /// </summary>
    public static OneDnnGemmKernel? AvailableKernel =>
        CpuComputesBf16 && OneDnnGemmKernel.Instance is { SupportsBf16Gemm: true } kernel ? kernel : null;

    /// <summary>Why <see cref="AvailableKernel"/> is null, for notes and errors.</summary>
    public const string Unavailable = "this machine has no bf16 GEMM (it needs oneDNN, see .ci/install-native.sh, and a CPU with AVX512-BF16 or AMX)";

    /// <summary>Whether the CPU lists AVX512-BF16 or AMX-BF16 (Linux: /proc/cpuinfo's flags; elsewhere unknown, so no).</summary>
    public static bool CpuComputesBf16 { get; } = CpuInfo.Flags.Overlaps(["avx512_bf16", "amx_bf16"]);

    public WeightMatrix Matrix { get; }

    public int Rows => Matrix.Rows;
    public int Cols => Matrix.Cols;
    public long StorageBytes => _stored.StorageBytes;

    public void MultiplyTransposed(float[] x, int m, float[] y)
    {
        StoredMatrix.CheckLengths(x, (long)m * Cols, y, (long)m * Rows, m);
        if (m == 0) return;
        ushort* rounded = RoundToBf16(x, (long)m * Cols);
        fixed (float* py = y)
            _kernel.GemmBf16(false, true, m, Rows, Cols, 1f, rounded, Cols, (ushort*)Matrix.Data, Cols, 0f, py, Rows);
    }

    public void Multiply(float[] dy, int m, float[] dx, bool accumulate)
    {
        StoredMatrix.CheckLengths(dy, (long)m * Rows, dx, (long)m * Cols, m);
        if (m == 0) return;
        ushort* rounded = RoundToBf16(dy, (long)m * Rows);
        fixed (float* pdx = dx)
            _kernel.GemmBf16(false, false, m, Cols, Rows, 1f, rounded, Rows, (ushort*)Matrix.Data, Cols, accumulate ? 1f : 0f, pdx, Cols);
    }

    public void ReadRows(int firstRow, int count, Span<float> destination) => _stored.ReadRows(firstRow, count, destination);

    /// <summary>
    /// The first <paramref name="count"/> values rounded to bf16 in this thread's scratch buffer, in chunks over the
    /// pool: a step rounds ~150 M activations, which on one core would be a tenth of the bf16 products' time. Also
    /// the rounding of the quantised matrices' bf16 products; valid until the thread's next call.
    /// </summary>
    internal static ushort* RoundToBf16(float[] values, long count)
    {
        ushort* rounded = (ushort*)(t_rounded ??= new ScratchBuffer()).Get((count + 1) / 2);
        var job = t_round ??= new RoundJob();
        job.Set(values, checked((int)count), rounded);
        GemmThreadPool.Shared.For(job.Tasks, job.Body);
        job.Release();
        return rounded;
    }

    [ThreadStatic] private static RoundJob? t_round;

    /// <summary>One reusable rounding job per issuing thread, so a step's hundreds of calls allocate nothing.</summary>
    private sealed class RoundJob
    {
        private const int Chunk = 64 * 1024;

        private float[] _values = [];
        private int _count;
        private ushort* _rounded;

        public RoundJob() => Body = Run;

        public Action<int> Body { get; }

        public int Tasks => (_count + Chunk - 1) / Chunk;

        public void Set(float[] values, int count, ushort* rounded)
        {
            _values = values;
            _count = count;
            _rounded = rounded;
        }

        /// <summary>Drops the call's array, so an idle job does not keep it alive.</summary>
        public void Release() => Set([], 0, null);

        private void Run(int task)
        {
            int start = task * Chunk, length = Math.Min(Chunk, _count - start);
            BFloat16.FromSingle(_values.AsSpan(start, length), new Span<ushort>(_rounded + start, length));
        }
    }

}
