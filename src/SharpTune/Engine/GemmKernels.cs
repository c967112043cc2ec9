namespace SharpTune.Engine;

/// <summary>
/// Backend selection. <c>SHARPTUNE_BACKEND=managed|onednn|openblas</c> forces one (an unavailable choice is an
/// error that names what is available). Otherwise the managed kernel: on the 2-core AVX-512 reference machine the
/// three are within noise of each other on single Qwen2.5-0.5B-shaped products (see bench "gemm"), but a step
/// interleaves library GEMMs with the engine's own parallel kernels, and the libraries' thread teams (OpenMP for
/// oneDNN, pthreads for OpenBLAS) keep spinning between calls on the cores <see cref="GemmThreadPool"/> needs next.
/// With one pool for everything a LoRA step of Qwen2.5-0.5B ran as fast or faster, and its element-wise and
/// attention kernels ran about twice as fast (bench "train --profile"). The native kernels stay selectable.
/// </summary>
public static class GemmKernels
{
    public const string EnvironmentVariable = "SHARPTUNE_BACKEND";

    private static readonly string[] s_preference = ["managed", "onednn", "openblas"];
    private static readonly Lazy<IGemmKernel> s_default = new(SelectDefault);
    private static readonly Lazy<ManagedGemmKernel> s_managed = new(() => new ManagedGemmKernel());

    /// <summary>The process-wide kernel, chosen once on first use.</summary>
    public static IGemmKernel Default => s_default.Value;

    /// <summary>
    /// The managed kernel, for products issued inside a <see cref="GemmThreadPool"/> task (attention's per-head
    /// GEMMs): it runs serially on that task's thread, where a native library would start its own threads on
    /// cores the pool already keeps busy.
    /// </summary>
    public static IGemmKernel Managed => s_managed.Value;

    /// <summary>Backend names that can be created on this machine, the default first.</summary>
    public static IReadOnlyList<string> Available() => s_preference.Where(IsAvailable).ToArray();

    /// <summary>The kernel for a backend name ("managed", "onednn", "openblas"); throws if it is not available here.</summary>
    public static IGemmKernel Create(string name)
    {
        string key = name.Trim().ToLowerInvariant();
        IGemmKernel? kernel = key switch
        {
            "managed" => s_managed.Value,
            "onednn" => OneDnnGemmKernel.Instance,
            "openblas" => OpenBlasGemmKernel.Instance,
            _ => throw new ArgumentException(
                $"unknown GEMM backend '{name}'; known: {string.Join(", ", s_preference)}; available here: {string.Join(", ", Available())}",
                nameof(name)),
        };
        return kernel ?? throw new InvalidOperationException(
            $"GEMM backend '{key}' is not available ({string.Join(" / ", LibraryNames(key))} could not be loaded); available: {string.Join(", ", Available())}");
    }

    /// <summary>One line for start-up logs, e.g. "gemm backend: onednn (libdnnl.so.2), 2 threads".</summary>
    public static string Describe() => Describe(Default);

    public static string Describe(IGemmKernel kernel)
    {
        string detail = kernel switch
        {
            OneDnnGemmKernel dnnl => $" ({dnnl.LibraryName}{(dnnl.SupportsBf16Gemm ? ", bf16 gemm" : "")})",
            OpenBlasGemmKernel blas => $" ({blas.LibraryName}{(blas.CoreName.Length > 0 ? ", core " + blas.CoreName : "")})",
            _ => "",
        };
        int threads = kernel is ManagedGemmKernel managed ? managed.Threads : EngineThreads.Count;
        return $"gemm backend: {kernel.Name}{detail}, {threads} thread{(threads == 1 ? "" : "s")}";
    }

    private static bool IsAvailable(string name) => name switch
    {
        "onednn" => OneDnnGemmKernel.IsAvailable,
        "openblas" => OpenBlasGemmKernel.IsAvailable,
        _ => true,
    };

    private static IEnumerable<string> LibraryNames(string name) => name switch
    {
        "onednn" => OneDnnGemmKernel.LibraryNames,
        "openblas" => OpenBlasGemmKernel.LibraryNames,
        _ => [],
    };

    private static IGemmKernel SelectDefault()
    {
        string? forced = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(forced))
        {
            try
            {
                return Create(forced);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                throw new InvalidOperationException($"{EnvironmentVariable}={forced}: {e.Message}", e);
            }
        }
        return Create(s_preference.First(IsAvailable));
    }
}
