using System.Runtime.InteropServices;

namespace SharpTune.Engine;

/// <summary>
/// GEMM through oneDNN's C API (<c>dnnl_sgemm</c>, row-major), loaded at run time. oneDNN parallelises with its
/// own OpenMP team, so calls are issued from the calling thread. BF16/F16 weights go through
/// the managed kernel (see <see cref="NativeGemmKernel"/>).
/// </summary>
public sealed unsafe class OneDnnGemmKernel : NativeGemmKernel
{
    /// <summary>oneDNN 3.x first; Debian bookworm ships 2.x (libdnnl2), whose sgemm C API is identical.</summary>
    public static readonly string[] LibraryNames = ["libdnnl.so.3", "libdnnl.so.2", "libdnnl.so"];

    private const int DnnlSuccess = 0;

    private static readonly Lazy<OneDnnGemmKernel?> s_instance = new(Load);

    private readonly delegate* unmanaged<byte, byte, long, long, long, float, float*, long, float*, long, float, float*, long, int> _sgemm;
    private readonly delegate* unmanaged<byte, byte, long, long, long, float, ushort*, long, ushort*, long, float, float*, long, int> _gemmBf16;

    private OneDnnGemmKernel(string library, nint sgemm, nint gemmBf16) : base(library)
    {
        _sgemm = (delegate* unmanaged<byte, byte, long, long, long, float, float*, long, float*, long, float, float*, long, int>)sgemm;
        _gemmBf16 = (delegate* unmanaged<byte, byte, long, long, long, float, ushort*, long, ushort*, long, float, float*, long, int>)gemmBf16;
        SupportsBf16Gemm = gemmBf16 != 0 && ProbeBf16();
    }

    /// <summary>The loaded kernel, or null when libdnnl is not installed.</summary>
    public static OneDnnGemmKernel? Instance => s_instance.Value;

    public static bool IsAvailable => Instance is not null;

    public override string Name => "onednn";

    /// <summary>
    /// True when the library exports <c>dnnl_gemm_bf16bf16f32</c> (not in the public header) and it runs on this
    /// CPU; on CPUs without AVX512-BF16 oneDNN may emulate it or refuse it.
    /// </summary>
    public bool SupportsBf16Gemm { get; }

    private static OneDnnGemmKernel? Load()
    {
        NativeLibraries.ForwardThreadCountToOpenMp();
        if (!NativeLibraries.TryLoad(LibraryNames, "dnnl_sgemm", out nint lib, out string name, out nint sgemm)) return null;
        NativeLibrary.TryGetExport(lib, "dnnl_gemm_bf16bf16f32", out nint bf16);
        return new OneDnnGemmKernel(name, sgemm, bf16);
    }

    private protected override void LibrarySgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc) =>
        Check(_sgemm(Trans(transA), Trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), "dnnl_sgemm");

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C with bf16 A and B and fp32 accumulation/output (row-major, like Sgemm).
    /// Only valid when <see cref="SupportsBf16Gemm"/>.
    /// </summary>
    public void GemmBf16(bool transA, bool transB, int m, int n, int k, float alpha,
        ushort* a, int lda, ushort* b, int ldb, float beta, float* c, int ldc)
    {
        if (!SupportsBf16Gemm) throw new NotSupportedException($"{LibraryName} has no usable dnnl_gemm_bf16bf16f32 on this CPU");
        GemmArgs.Check(transA, transB, m, n, k, lda, ldb, ldc);
        if (GemmArgs.FinishedWithoutMultiply(m, n, k, beta, c, ldc)) return;
        Check(_gemmBf16(Trans(transA), Trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), "dnnl_gemm_bf16bf16f32");
    }

    private bool ProbeBf16()
    {
        ushort* a = stackalloc ushort[4];
        ushort* b = stackalloc ushort[4];
        float* c = stackalloc float[4];
        for (int i = 0; i < 4; i++)
        {
            a[i] = BFloat16.FromSingle(i + 1);
            b[i] = BFloat16.FromSingle(1f);
        }
        int status = _gemmBf16((byte)'N', (byte)'N', 2, 2, 2, 1f, a, 2, b, 2, 0f, c, 2);
        return status == DnnlSuccess && c[0] == 3f && c[3] == 7f;
    }

    private static byte Trans(bool trans) => trans ? (byte)'T' : (byte)'N';

    private static void Check(int status, string function)
    {
        if (status != DnnlSuccess) throw new InvalidOperationException($"{function} failed with dnnl_status_t {status}");
    }
}
