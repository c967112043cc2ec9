namespace SharpTune.Engine;

/// <summary>Element types a tensor can be stored in (the safetensors subset SharpTune reads and writes).</summary>
public enum DType
{
    F32,
    F16,
    BF16,
    I8,
    U8,
    I32,
    I64,
}

public static class DTypeInfo
{
    public static int SizeOf(DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.I8 or DType.U8 => 1,
        DType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>The dtype string used in a safetensors header ("F32", "BF16", ...).</summary>
    public static string SafetensorsName(DType dtype) => dtype.ToString();

    public static bool TryParseSafetensorsName(string name, out DType dtype) => name switch
    {
        "F32" => Set(DType.F32, out dtype),
        "F16" => Set(DType.F16, out dtype),
        "BF16" => Set(DType.BF16, out dtype),
        "I8" => Set(DType.I8, out dtype),
        "U8" => Set(DType.U8, out dtype),
        "I32" => Set(DType.I32, out dtype),
        "I64" => Set(DType.I64, out dtype),
        _ => Set(default, out dtype) && false,
    };

    private static bool Set(DType value, out DType dtype)
    {
        dtype = value;
        return true;
    }
}
