using System.Runtime.CompilerServices;


namespace SharpTune.Engine;

/// <summary>
/// Pure managed, multi-threaded SIMD GEMM (GotoBLAS/BLIS structure): op(A) is packed once per call into
/// MR-row panels, each task packs a KC×(its columns) block of op(B) into NR-column panels and sweeps the
/// register-blocked micro-kernel over it. Always available; the instruction set is picked from the hardware.
/// </summary>
public sealed unsafe class ManagedGemmKernel : IGemmKernel
{
    // KC: one packed B micro-panel is KC·NR floats (256·32·4 = 32 KiB) and must stay in the 48 KiB L1d while the
    // kernel sweeps every A micro-panel of the block past it.
    private const int KcMax = 256;
    // MC: the packed A block MC×KC (256·256·4 = 256 KiB) is re-read from L2 for every B micro-panel of a task.
    private const int McMax = 256;
    // A task's packed B block is KC × (16·NR) = 512 KiB at NR=32: L2-resident (2 MiB per core) next to the A block.
    private const int MaxPanelsPerTask = 16;
    // Below this many flops the fork/join latency of the pool outweighs the second core.
    private const double ParallelFlops = 2e6;

    private readonly int _mr;
    private readonly int _nr;
    private readonly delegate*<int, float*, float*, float*, nint, float, float, void> _kernel;
    private readonly GemmThreadPool _pool;

    public ManagedGemmKernel() : this(BestIsa, GemmThreadPool.Shared)
    {
    }

    /// <summary>A kernel restricted to <paramref name="isa"/> (tests use this to cover the fallbacks).</summary>
    public ManagedGemmKernel(ManagedGemmIsa isa, GemmThreadPool pool)
    {
        if (!MicroKernels.IsSupported(isa))
            throw new PlatformNotSupportedException($"managed GEMM: {isa} is not supported on this CPU");
        Isa = isa;
        _pool = pool;
        (_mr, _nr) = MicroKernels.Shape(isa);
        _kernel = MicroKernels.For(isa);
    }

    /// <summary>The widest instruction set this machine runs: AVX-512, then AVX2+FMA, then scalar.</summary>
    public static ManagedGemmIsa BestIsa =>
        MicroKernels.IsSupported(ManagedGemmIsa.Avx512) ? ManagedGemmIsa.Avx512
        : MicroKernels.IsSupported(ManagedGemmIsa.Avx2) ? ManagedGemmIsa.Avx2
        : ManagedGemmIsa.Scalar;

    public ManagedGemmIsa Isa { get; }

    public int Threads => _pool.Threads;

    public string Name => Isa switch
    {
        ManagedGemmIsa.Avx512 => "managed-avx512",
        ManagedGemmIsa.Avx2 => "managed-avx2",
        _ => "managed-scalar",
    };

    public void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        GemmArgs.Check(transA, transB, m, n, k, lda, ldb, ldc);
        Gemm(m, n, k, alpha, new Operand(a, DType.F32, lda, transA), new Operand(b, DType.F32, ldb, transB), beta, c, ldc);
    }

    public void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float beta, float* c, int ldc, long strideC)
    {
        GemmArgs.Check(transA, transB, m, n, k, lda, ldb, ldc);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        // Big items already use every thread inside one GEMM; small ones (attention heads) go one item per task.
        if (2.0 * m * n * k >= 8 * ParallelFlops)
        {
            for (int i = 0; i < batch; i++)
                Gemm(m, n, k, alpha, new Operand(a + i * strideA, DType.F32, lda, transA),
                    new Operand(b + i * strideB, DType.F32, ldb, transB), beta, c + i * strideC, ldc);
            return;
        }
        _pool.For(batch, i => Gemm(m, n, k, alpha, new Operand(a + i * strideA, DType.F32, lda, transA),
            new Operand(b + i * strideB, DType.F32, ldb, transB), beta, c + i * strideC, ldc));
    }

    public void GemmWeight(int m, float* x, int ldx, WeightMatrix w, float beta, float* y, int ldy)
    {
        GemmArgs.CheckWeight(m, ldx, w, ldy);
        Gemm(m, w.Rows, w.Cols, 1f, new Operand(x, DType.F32, ldx, false), new Operand(w.Data, w.DType, w.Cols, true), beta, y, ldy);
    }

    public void GemmWeightInput(int m, float* dy, int lddy, WeightMatrix w, float beta, float* dx, int lddx)
    {
        GemmArgs.CheckWeightInput(m, lddy, w, lddx);
        Gemm(m, w.Cols, w.Rows, 1f, new Operand(dy, DType.F32, lddy, false), new Operand(w.Data, w.DType, w.Cols, false), beta, dx, lddx);
    }

    /// <summary>
    /// Floats of the packed op(A) of an m×k product: the calling thread's packing buffer grows to the largest such
    /// product it has run and is kept (the lm_head's input gradient, chunk rows × vocabulary, is usually the largest).
    /// </summary>
    public long PackedAValues(int m, int k) => (long)((m + _mr - 1) / _mr) * _mr * k;

    private void Gemm(int m, int n, int k, float alpha, Operand a, Operand b, float beta, float* c, int ldc)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f)
        {
            GemmArgs.ScaleC(m, n, beta, c, ldc);
            return;
        }

        // Balanced K blocks (e.g. 896 → 4×224 rather than 3×256 + 128) keep every block near the L1 budget.
        int kBlocks = (k + KcMax - 1) / KcMax;
        int kc = (k + kBlocks - 1) / kBlocks;
        int mPanels = (m + _mr - 1) / _mr;
        int nPanels = (n + _nr - 1) / _nr;
        bool parallel = 2.0 * m * n * k >= ParallelFlops && _pool.Threads > 1;
        int threads = parallel ? _pool.Threads : 1;

        var scratch = PackBuffers.Current;
        float* packedA = scratch.A(PackedAValues(m, k));
        PackAllA(a, m, k, kc, mPanels, packedA, parallel);

        (int nTasks, int mTasks) = SplitTasks(nPanels, mPanels, threads);
        int panelsPerNTask = (nPanels + nTasks - 1) / nTasks;
        int panelsPerMTask = (mPanels + mTasks - 1) / mTasks;
        var job = new BlockJob(this, a: packedA, b, c, ldc, m, n, k, kc, alpha, beta, panelsPerNTask, panelsPerMTask, nTasks);
        int tasks = nTasks * mTasks;
        if (parallel)
            _pool.For(tasks, job.Run);
        else
            for (int t = 0; t < tasks; t++) job.Run(t);
    }

    /// <summary>
    /// Column tasks first (each packs only its own B columns); row tasks only when there are too few column
    /// panels to give every thread two tasks, the slack that lets a busy core hand work to an idle one.
    /// </summary>
    private static (int NTasks, int MTasks) SplitTasks(int nPanels, int mPanels, int threads)
    {
        int nTasks = (nPanels + MaxPanelsPerTask - 1) / MaxPanelsPerTask;
        if (threads > 1)
        {
            int wanted = 2 * threads;
            nTasks = Math.Min(nPanels, Math.Max(nTasks, wanted));
            int rounded = (nTasks + threads - 1) / threads * threads;
            if (rounded <= nPanels) nTasks = rounded;
            if (nTasks < wanted)
                return (nTasks, Math.Min(mPanels, (wanted + nTasks - 1) / nTasks));
        }
        return (nTasks, 1);
    }

    /// <summary>Packs all of op(A): K block by K block, each block holding every MR panel ([k][MR] each).</summary>
    private void PackAllA(Operand a, int m, int k, int kc, int mPanels, float* packed, bool parallel)
    {
        int mr = _mr;
        int chunks = parallel ? Math.Min(mPanels, 4 * _pool.Threads) : 1;
        int perChunk = (mPanels + chunks - 1) / chunks;
        void PackChunk(int chunk)
        {
            int first = chunk * perChunk, last = Math.Min(mPanels, first + perChunk);
            for (int k0 = 0; k0 < k; k0 += kc)
            {
                int kcb = Math.Min(kc, k - k0);
                float* block = packed + (long)mPanels * mr * k0;
                for (int ip = first; ip < last; ip++)
                {
                    int i0 = ip * mr;
                    Packing.PackA(a, i0, Math.Min(mr, m - i0), k0, kcb, mr, block + (long)ip * mr * kcb);
                }
            }
        }
        if (chunks > 1)
            _pool.For(chunks, PackChunk);
        else
            PackChunk(0);
    }

    /// <summary>One call's macro-kernel: task t covers a rectangle of micro-panels and loops over all K blocks.</summary>
    private sealed class BlockJob(ManagedGemmKernel owner, float* a, Operand b, float* c, int ldc, int m, int n, int k, int kc,
        float alpha, float beta, int panelsPerNTask, int panelsPerMTask, int nTasks)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int task)
        {
            int mr = owner._mr, nr = owner._nr;
            int mPanels = (m + mr - 1) / mr;
            int jp0 = (task % nTasks) * panelsPerNTask;
            int ip0 = (task / nTasks) * panelsPerMTask;
            int jEnd = Math.Min(n, (jp0 + panelsPerNTask) * nr), iEnd = Math.Min(m, (ip0 + panelsPerMTask) * mr);
            int j0 = jp0 * nr, i0 = ip0 * mr;
            if (j0 >= jEnd || i0 >= iEnd) return;
            int taskPanels = (jEnd - j0 + nr - 1) / nr;

            var scratch = PackBuffers.Current;
            float* packedB = scratch.B((long)taskPanels * nr * kc);
            float* edge = scratch.Edge(mr * nr);
            var kernel = owner._kernel;
            int mcPanels = Math.Max(1, McMax / mr);

            for (int k0 = 0; k0 < k; k0 += kc)
            {
                int kcb = Math.Min(kc, k - k0);
                float betaBlock = k0 == 0 ? beta : 1f;
                for (int jp = 0; jp < taskPanels; jp++)
                {
                    int j = j0 + jp * nr;
                    Packing.PackB(b, j, Math.Min(nr, jEnd - j), k0, kcb, nr, packedB + (long)jp * nr * kcb);
                }
                float* aBlock = a + (long)mPanels * mr * k0;
                for (int ic = i0; ic < iEnd; ic += mcPanels * mr)
                {
                    int icEnd = Math.Min(iEnd, ic + mcPanels * mr);
                    for (int jp = 0; jp < taskPanels; jp++)
                    {
                        int j = j0 + jp * nr;
                        int cols = Math.Min(nr, jEnd - j);
                        float* bPanel = packedB + (long)jp * nr * kcb;
                        for (int i = ic; i < icEnd; i += mr)
                        {
                            int rows = Math.Min(mr, icEnd - i);
                            float* aPanel = aBlock + (long)(i / mr) * mr * kcb;
                            float* cTile = c + (long)i * ldc + j;
                            if (rows == mr && cols == nr)
                            {
                                kernel(kcb, aPanel, bPanel, cTile, ldc, alpha, betaBlock);
                            }
                            else
                            {
                                kernel(kcb, aPanel, bPanel, edge, nr, 1f, 0f);
                                MergeEdge(edge, nr, rows, cols, cTile, ldc, alpha, betaBlock);
                            }
                        }
                    }
                }
            }
        }

        private static void MergeEdge(float* tile, int nr, int rows, int cols, float* c, int ldc, float alpha, float beta)
        {
            for (int i = 0; i < rows; i++)
            {
                float* src = tile + i * nr;
                float* dst = c + (long)i * ldc;
                for (int j = 0; j < cols; j++)
                    dst[j] = beta == 0f ? alpha * src[j] : MathF.FusedMultiplyAdd(alpha, src[j], beta * dst[j]);
            }
        }
    }

    /// <summary>Per-thread packing buffers: packed op(A) for the whole call, one task's B block, one edge tile.</summary>
    private sealed class PackBuffers
    {
        [ThreadStatic] private static PackBuffers? t_current;

        private readonly ScratchBuffer _a = new(), _b = new(), _edge = new();

        public static PackBuffers Current => t_current ??= new PackBuffers();

        public float* A(long count) => _a.Get(count);

        public float* B(long count) => _b.Get(count);

        public float* Edge(long count) => _edge.Get(count);
    }
}
