using System.Runtime.InteropServices;
using SharpTune.Engine;
using System.Reflection;
using Xunit.Sdk;

namespace SharpTune.Tests.Engine;

/// <summary>Kernel lookup by name (native ones may be absent) and a double-accumulation reference GEMM.</summary>
internal static unsafe class GemmTestSupport
{
    /// <summary>
    /// The kernel by name, or null when this machine cannot run it (library or instruction set missing); "managed" is
    /// the managed backend at this CPU's best instruction set.
    /// </summary>
    public static IGemmKernel? TryGet(string name) => name switch
    {
        "managed" => GemmKernels.Create("managed"),
        "managed-avx512" => Managed(ManagedGemmIsa.Avx512),
        "managed-avx2" => Managed(ManagedGemmIsa.Avx2),
        "managed-scalar" => Managed(ManagedGemmIsa.Scalar),
        "onednn" => OneDnnGemmKernel.Instance,
        "openblas" => OpenBlasGemmKernel.Instance,
        _ => throw new ArgumentException(name),
    };

    /// <summary>The kernel of a <see cref="GemmKernelDataAttribute"/> row, which is skipped where it is missing.</summary>
    public static IGemmKernel Get(string name) =>
        TryGet(name) ?? throw new InvalidOperationException($"{name} is missing, yet its test row was not skipped");

    private static ManagedGemmKernel? Managed(ManagedGemmIsa isa) =>
        ManagedGemmKernel.BestIsa >= isa ? new ManagedGemmKernel(isa, GemmThreadPool.Shared) : null;

    /// <summary>Native fp32 buffer with deterministic values in [-1, 1); freed on dispose.</summary>
    public sealed class NativeFloats : IDisposable
    {
        public readonly float* Ptr;
        public readonly long Length;

        public NativeFloats(long length, int seed, float fill = float.NaN, bool random = true)
        {
            Length = length;
            Ptr = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, length) * 4), 64);
            var rng = new Random(seed);
            for (long i = 0; i < length; i++) Ptr[i] = random ? rng.NextSingle() * 2f - 1f : fill;
        }

        public Span<float> Span => new(Ptr, checked((int)Length));

        public void Dispose() => NativeMemory.AlignedFree(Ptr);
    }

    /// <summary>
    /// Checks C against alpha·op(A)·op(B) + beta·C0 accumulated in double. The tolerance scales with sqrt(K)
    /// (random-walk rounding growth of a length-K fp32 sum) and with the magnitude Σ|a·b| + |beta·c0|.
    /// Padding columns beyond n (ldc &gt; n) must be untouched.
    /// </summary>
    public static void AssertGemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c0, float* c, int ldc, Func<long, float>? bValue = null)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < ldc; j++)
            {
                float actual = c[(long)i * ldc + j];
                float before = c0[(long)i * ldc + j];
                if (j >= n)
                {
                    Assert.True(BitConverter.SingleToInt32Bits(actual) == BitConverter.SingleToInt32Bits(before),
                        $"padding C[{i},{j}] was modified");
                    continue;
                }
                double sum = 0, magnitude = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    long bi = transB ? (long)j * ldb + p : (long)p * ldb + j;
                    double bv = bValue is null ? b[bi] : bValue(bi);
                    sum += av * bv;
                    magnitude += Math.Abs(av * bv);
                }
                double expected = alpha * sum;
                magnitude *= Math.Abs(alpha);
                if (beta != 0f)
                {
                    expected += beta * (double)before;
                    magnitude += Math.Abs(beta * (double)before);
                }
                double tolerance = 1e-6 * Math.Sqrt(k + 2) * (magnitude + 1e-20);
                Assert.True(Math.Abs(actual - expected) <= tolerance,
                    $"C[{i},{j}] = {actual}, expected {expected} (tolerance {tolerance:G3}; m={m} n={n} k={k} tA={transA} tB={transB})");
            }
        }
    }
}

/// <summary>
/// One theory row per GEMM kernel name ("managed-avx512", "managed-avx2", "managed-scalar", "onednn", "openblas";
/// "managed" for the backend <see cref="GemmKernels.Create"/> names):
/// skipped with the reason in the test output where this machine cannot run that kernel (.ci/install-native.sh
/// installs oneDNN and OpenBLAS).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class GemmKernelDataAttribute : DataAttribute
{
    private readonly string _name;

    public GemmKernelDataAttribute(string name)
    {
        _name = name;
        if (GemmTestSupport.TryGet(name) is null)
            Skip = name.StartsWith("managed", StringComparison.Ordinal)
                ? $"this CPU lacks the instruction set of the {name} GEMM kernel"
                : $"the {name} GEMM kernel needs its native library ({string.Join(" / ", name == "onednn" ? OneDnnGemmKernel.LibraryNames : OpenBlasGemmKernel.LibraryNames)}; .ci/install-native.sh installs it)";
    }

    public override IEnumerable<object[]> GetData(MethodInfo testMethod) => [[_name]];
}

/// <summary>A check of oneDNN's bf16 GEMM itself: skipped with the reason where oneDNN or its bf16 GEMM is missing.</summary>
public sealed class OneDnnBf16GemmFactAttribute : FactAttribute
{
    public OneDnnBf16GemmFactAttribute()
    {
        if (OneDnnGemmKernel.Instance is not { } dnnl) Skip = "needs oneDNN (.ci/install-native.sh installs it)";
        else if (!dnnl.SupportsBf16Gemm) Skip = $"{dnnl.LibraryName} has no usable dnnl_gemm_bf16bf16f32 here";
    }
}
