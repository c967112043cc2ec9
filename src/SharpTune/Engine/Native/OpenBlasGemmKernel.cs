using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Engine;

/// <summary>
/// GEMM through OpenBLAS's <c>cblas_sgemm</c> (CblasRowMajor), loaded at run time. OpenBLAS runs its own thread
/// pool, sized to <see cref="EngineThreads.Count"/>. BF16/F16 weights go to the managed kernel (see <see cref="NativeGemmKernel"/>).
/// </summary>
public sealed unsafe class OpenBlasGemmKernel : NativeGemmKernel
{
    public static readonly string[] LibraryNames = ["libopenblas.so.0", "libopenblas.so"];

    private const int CblasRowMajor = 101;
    private const int CblasNoTrans = 111;
    private const int CblasTrans = 112;

    private static readonly Lazy<OpenBlasGemmKernel?> s_instance = new(Load);

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> _sgemm;

    private OpenBlasGemmKernel(string library, nint sgemm, string coreName) : base(library)
    {
        CoreName = coreName;
        _sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
    }

    /// <summary>The loaded kernel, or null when libopenblas is not installed.</summary>
    public static OpenBlasGemmKernel? Instance => s_instance.Value;

    public static bool IsAvailable => Instance is not null;

    public override string Name => "openblas";

    /// <summary>The kernel family OpenBLAS dispatched to ("SkylakeX", "Haswell", ...), or "" if not reported.</summary>
    public string CoreName { get; }

    private static OpenBlasGemmKernel? Load()
    {
        // Debian's OpenBLAS 0.3.21 predates Sapphire/Emerald Rapids and falls back to a generic core on them;
        // with AVX-512F present, the SkylakeX kernels are the right ones. A user-set value is left alone.
        if (Avx512F.IsSupported) NativeLibraries.SetNativeEnvironmentDefault("OPENBLAS_CORETYPE", "SKYLAKEX");
        if (!NativeLibraries.TryLoad(LibraryNames, "cblas_sgemm", out nint lib, out string name, out nint sgemm)) return null;
        if (NativeLibrary.TryGetExport(lib, "openblas_set_num_threads", out nint setThreads))
            ((delegate* unmanaged<int, void>)setThreads)(EngineThreads.Count);
        string core = NativeLibrary.TryGetExport(lib, "openblas_get_corename", out nint getCore)
            ? Marshal.PtrToStringUTF8(((delegate* unmanaged<nint>)getCore)()) ?? ""
            : "";
        return new OpenBlasGemmKernel(name, sgemm, core);
    }

    private protected override void LibrarySgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc) =>
        _sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
