using System.Runtime.InteropServices;
using SharpTune.Engine;
using Xunit.Abstractions;

namespace SharpTune.Tests.Engine;

/// <summary>Kernel lookup by name (native ones may be absent) and a double-accumulation reference GEMM.</summary>
internal static unsafe class GemmTestSupport
{
    public static readonly string[] KernelNames = ["managed-avx512", "managed-avx2", "managed-scalar", "onednn", "openblas"];

    public static TheoryData<string> Kernels()
    {
        var data = new TheoryData<string>();
        foreach (string name in KernelNames) data.Add(name);
        return data;
    }

    /// <summary>The kernel, or null (with a note in the test output) when this machine cannot run it.</summary>
    public static IGemmKernel? TryGet(string name, ITestOutputHelper output)
    {
        IGemmKernel? kernel = name switch
        {
            "managed-avx512" => Managed(ManagedGemmIsa.Avx512),
            "managed-avx2" => Managed(ManagedGemmIsa.Avx2),
            "managed-scalar" => Managed(ManagedGemmIsa.Scalar),
            "onednn" => OneDnnGemmKernel.Instance,
            "openblas" => OpenBlasGemmKernel.Instance,
            _ => throw new ArgumentException(name),
        };
        if (kernel is null) output.WriteLine($"SKIPPED: {name} is not available on this machine (library or instruction set missing)");
        return kernel;
    }

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
