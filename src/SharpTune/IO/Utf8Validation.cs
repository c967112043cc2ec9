using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace SharpTune.IO;

/// <summary>
/// UTF-8 checks for the JSON files SharpTune reads. System.Text.Json checks the bytes of a string only when the string
/// is read, so invalid UTF-8 would otherwise surface late as "Cannot transcode invalid UTF-8 JSON text", naming
/// neither file nor field, or not at all in parts never read.
/// </summary>
public static class Utf8Validation
{
    /// <summary>
    /// A JSON file's bytes without a UTF-8 byte order mark (which JsonDocument does not skip in bytes), checked to be
    /// UTF-8 throughout.
    /// </summary>
    /// <param name="error">Makes the exception for "PATH: invalid UTF-8 at line L, byte B".</param>
    public static ReadOnlyMemory<byte> ReadJsonFile(string path, Func<string, Exception> error)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (Problem(bytes) is { } problem) throw error($"{path}: {problem}");
        return bytes.AsMemory(BomLength(bytes));
    }

    public static int BomLength(ReadOnlySpan<byte> bytes) => bytes.StartsWith("\uFEFF"u8) ? 3 : 0;

    /// <summary>Null for valid UTF-8, else where the first invalid byte is: "invalid UTF-8 at line L, byte B" (both 1-based, B within the line).</summary>
    public static string? Problem(ReadOnlySpan<byte> bytes)
    {
        int offset = FirstInvalidByte(bytes);
        if (offset < 0) return null;
        ReadOnlySpan<byte> before = bytes[..offset];
        int line = 1 + before.Count((byte)'\n');
        int lineStart = before.LastIndexOf((byte)'\n') + 1;
        return $"invalid UTF-8 at line {line}, byte {offset - lineStart + 1}";
    }

    /// <summary>The 0-based offset of the first byte that is not part of valid UTF-8, or -1 when all are.</summary>
    public static int FirstInvalidByte(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes)) return -1;
        int offset = 0;
        while (Rune.DecodeFromUtf8(bytes[offset..], out _, out int consumed) == OperationStatus.Done)
            offset += consumed;
        return offset;
    }
}
