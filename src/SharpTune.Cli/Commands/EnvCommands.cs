using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using SharpTune.Engine;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune version` and `sharptune env` (what to paste into a bug report, as `llamafactory-cli env`).</summary>
public static class EnvCommands
{
    /// <summary>The tool's version as `--version` prints it (the assembly's informational version).</summary>
    public static string Version =>
        typeof(EnvCommands).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    public static Command VersionCommand()
    {
        var command = new Command("version", "Print SharpTune's version");
        command.SetAction(_ =>
        {
            Console.WriteLine($"sharptune {Version}");
            return 0;
        });
        return command;
    }

    public static Command Env()
    {
        var command = new Command("env", "Print versions, OS, CPU model and features, the GEMM backend, native libraries found and memory");
        command.SetAction(_ => CliAction.Run(() =>
        {
            foreach (var (name, value) in Describe()) Console.WriteLine($"- {name}: {value}");
            return 0;
        }));
        return command;
    }

    /// <summary>One (name, value) line per fact.</summary>
    public static IEnumerable<(string Name, string Value)> Describe()
    {
        yield return ("SharpTune version", Version);
        yield return (".NET", $"{RuntimeInformation.FrameworkDescription} ({RuntimeInformation.RuntimeIdentifier})");
        yield return ("OS", $"{RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture})");
        yield return ("CPU", $"{CpuInfo.ModelName ?? "unknown model"}, {Environment.ProcessorCount} logical processors, {EngineThreads.Count} engine threads");
        yield return ("CPU features", string.Join(", ",
            Feature("AVX2", Avx2.IsSupported),
            Feature("AVX-512F", Avx512F.IsSupported),
            Feature("AVX512-BF16", CpuInfo.Flags.Contains("avx512_bf16")),
            Feature("AMX-BF16", CpuInfo.Flags.Contains("amx_bf16"))));
        yield return ("compute", GemmKernels.Describe());
        yield return ("bf16 compute", Bf16ComputeMatrix.AvailableKernel is null ? $"no: {Bf16ComputeMatrix.Unavailable}" : "yes (bf16: true multiplies on oneDNN's bf16 GEMM)");
        yield return ("oneDNN", OneDnnGemmKernel.Instance is { } dnnl ? dnnl.LibraryName : $"not found (tried {string.Join(", ", OneDnnGemmKernel.LibraryNames)})");
        yield return ("OpenBLAS", OpenBlasGemmKernel.Instance is { } blas ? blas.LibraryName : $"not found (tried {string.Join(", ", OpenBlasGemmKernel.LibraryNames)})");
        var memory = GC.GetGCMemoryInfo();
        yield return ("memory", $"{Gibibytes(memory.TotalAvailableMemoryBytes)} GiB available to this process");
    }

    private static string Feature(string name, bool present) => $"{name} {(present ? "yes" : "no")}";

    private static string Gibibytes(long bytes) => (bytes / (1024.0 * 1024 * 1024)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
}
