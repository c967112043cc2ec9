using System.Runtime.InteropServices;

namespace SharpTune.Engine;

/// <summary>Run-time loading helpers for the optional native GEMM libraries.</summary>
internal static unsafe class NativeLibraries
{
    /// <summary>
    /// The first of <paramref name="names"/> that loads, with its <paramref name="requiredExport"/>; false when none
    /// loads or the one that loads lacks the export. A missing library is not an error.
    /// </summary>
    public static bool TryLoad(IEnumerable<string> names, string requiredExport, out nint handle, out string loadedName, out nint export)
    {
        foreach (string name in names)
        {
            if (NativeLibrary.TryLoad(name, out handle))
            {
                loadedName = name;
                return NativeLibrary.TryGetExport(handle, requiredExport, out export);
            }
        }
        handle = 0;
        loadedName = "";
        export = 0;
        return false;
    }

    /// <summary>
    /// Sets a variable in the C runtime's environment when it is not already set there. Native libraries read
    /// getenv() at load time, which <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach
    /// (.NET keeps its own copy), so this goes through libc setenv. No-op off Linux/glibc.
    /// </summary>
    public static void SetNativeEnvironmentDefault(string name, string value)
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out nint libc)) return;
        if (!NativeLibrary.TryGetExport(libc, "setenv", out nint setenv)) return;
        nint nameUtf8 = Marshal.StringToCoTaskMemUTF8(name);
        nint valueUtf8 = Marshal.StringToCoTaskMemUTF8(value);
        try
        {
            // overwrite = 0: a value the user already exported wins.
            ((delegate* unmanaged<nint, nint, int, int>)setenv)(nameUtf8, valueUtf8, 0);
        }
        finally
        {
            Marshal.FreeCoTaskMem(nameUtf8);
            Marshal.FreeCoTaskMem(valueUtf8);
        }
    }

    /// <summary>
    /// Passes an explicit SHARPTUNE_NUM_THREADS on to OpenMP-based libraries (oneDNN), which size their team from
    /// OMP_NUM_THREADS when libgomp initialises, and makes their idle threads sleep (OMP_WAIT_POLICY=PASSIVE) unless
    /// the user chose otherwise. Must run before the library is loaded.
    /// </summary>
    public static void ForwardThreadCountToOpenMp()
    {
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("SHARPTUNE_NUM_THREADS")))
            SetNativeEnvironmentDefault("OMP_NUM_THREADS", EngineThreads.Count.ToString());
        // Between two oneDNN calls our own pool runs the rest of the step on the same cores; OpenMP's default
        // spin-wait would keep its threads busy there and halve that work (bf16 LoRA step: 157 → 197 tokens/s).
        SetNativeEnvironmentDefault("OMP_WAIT_POLICY", "PASSIVE");
    }
}
