using System.Runtime.InteropServices;
using SharpTune.Engine;

namespace SharpTune.Bench;

/// <summary>
/// GFLOP/s of every available GEMM backend on Qwen2.5-0.5B projection shapes (M = --seq rows): plain Sgemm in the
/// four transpose layouts (NT only for lm_head), GemmWeight with BF16 weights (the forward of a frozen projection)
/// and GemmWeightInput (its input gradient); BF16 is oneDNN's bf16×bf16→fp32 GEMM (NT) where the library has it.
/// Options: --backends a,b  --shapes q_proj,...  --variants NN,NT,TN,TT,W-BF16,W-BF16-IN,BF16
/// </summary>
public sealed unsafe class GemmWorkload : IWorkload
{
    private sealed record Shape(string Name, int N, int K, bool AllTransposes);

    // (N, K) of y = x·Wᵀ for each projection: hidden 896, 2 KV heads × 64, MLP 4864, vocabulary 151936.
    private static readonly Shape[] s_shapes =
    [
        new("q_o_proj", 896, 896, true),
        new("k_v_proj", 128, 896, true),
        new("gate_up_proj", 4864, 896, true),
        new("down_proj", 896, 4864, true),
        new("lm_head", 151936, 896, false),
    ];

    private static readonly string[] s_variants = ["NN", "NT", "TN", "TT", "W-BF16", "W-BF16-IN", "BF16"];

    public string Name => "gemm";

    public string Description => "GEMM GFLOP/s per backend on Qwen2.5-0.5B layer shapes";

    public void Run(BenchContext context)
    {
        var backends = Filter(context.Option("backends", ""), GemmKernels.Available());
        var shapes = Filter(context.Option("shapes", ""), s_shapes.Select(s => s.Name).ToArray());
        var variants = Filter(context.Option("variants", ""), s_variants);
        int m = context.Seq;
        if (!context.Json) Console.WriteLine($"# {GemmKernels.Describe()}");

        // Backend-outer: OpenBLAS and OpenMP (oneDNN) worker threads keep spinning for a while after a call and
        // would steal the cores from the next backend if backends alternated shape by shape.
        foreach (string backend in backends)
        {
            var kernel = GemmKernels.Create(backend);
            foreach (var shape in s_shapes.Where(s => shapes.Contains(s.Name)))
                RunShape(context, kernel, shape, variants, m);
        }
    }

    private static void RunShape(BenchContext context, IGemmKernel kernel, Shape shape, IReadOnlyList<string> variants, int m)
    {
        long aCount = (long)m * shape.K, bCount = (long)shape.N * shape.K, cCount = (long)m * shape.N;
        float* a = Random(aCount, 1), b = Random(bCount, 2), c = (float*)NativeMemory.AlignedAlloc((nuint)(cCount * 4), 64);
        ushort* w16 = (ushort*)NativeMemory.AlignedAlloc((nuint)(bCount * 2), 64);
        BFloat16.FromSingle(new ReadOnlySpan<float>(b, checked((int)bCount)), new Span<ushort>(w16, checked((int)bCount)));
        var weight = new WeightMatrix(w16, DType.BF16, shape.N, shape.K);
        ushort* x16 = (ushort*)NativeMemory.AlignedAlloc((nuint)(aCount * 2), 64);
        BFloat16.FromSingle(new ReadOnlySpan<float>(a, checked((int)aCount)), new Span<ushort>(x16, checked((int)aCount)));
        double flops = 2.0 * m * shape.N * shape.K;
        try
        {
            foreach (string variant in variants)
            {
                Action? call = variant switch
                {
                    "W-BF16" => () => kernel.GemmWeight(m, a, shape.K, weight, 0f, c, shape.N),
                    "W-BF16-IN" => () => kernel.GemmWeightInput(m, c, shape.N, weight, 0f, a, shape.K),
                    "BF16" when kernel is OneDnnGemmKernel { SupportsBf16Gemm: true } dnnl => () =>
                        dnnl.GemmBf16(false, true, m, shape.N, shape.K, 1f, x16, shape.K, w16, shape.K, 0f, c, shape.N),
                    "BF16" => null,
                    _ when !shape.AllTransposes && variant != "NT" => null,
                    _ => SgemmCall(kernel, variant, m, shape.N, shape.K, a, b, c),
                };
                if (call is null) continue;
                double seconds = context.MedianSeconds(call);
                context.Report($"{kernel.Name}.{variant}.{shape.Name}[{shape.N}x{shape.K}]", flops / seconds / 1e9, "GFLOP/s");
            }
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
            NativeMemory.AlignedFree(w16);
            NativeMemory.AlignedFree(x16);
        }
    }

    /// <summary>C[m×n] = op(A)·op(B) with A holding m·k and B n·k elements in the layout the variant names.</summary>
    private static Action SgemmCall(IGemmKernel kernel, string variant, int m, int n, int k, float* a, float* b, float* c)
    {
        bool ta = variant[0] == 'T', tb = variant[1] == 'T';
        int lda = ta ? m : k, ldb = tb ? k : n;
        return () => kernel.Sgemm(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
    }

    private static IReadOnlyList<string> Filter(string requested, IReadOnlyList<string> all)
    {
        if (string.IsNullOrWhiteSpace(requested)) return all;
        var names = requested.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = names.Where(n => !all.Contains(n, StringComparer.OrdinalIgnoreCase)).ToArray();
        if (unknown.Length > 0)
            throw new ArgumentException($"unknown or unavailable: {string.Join(", ", unknown)}; choose from {string.Join(", ", all)}");
        return all.Where(a => names.Contains(a, StringComparer.OrdinalIgnoreCase)).ToArray();
    }

    private static float* Random(long count, int seed)
    {
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        var rng = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = rng.NextSingle() * 2f - 1f;
        return p;
    }
}
