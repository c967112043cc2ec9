namespace SharpTune.IO.Safetensors;

/// <summary>
/// A safetensors file, or a sharded checkpoint's index, breaks the format. The message is one line:
/// "PATH: tensor 'NAME': what is wrong" (the file as given, folder included; the tensor part only where one tensor is
/// at fault).
/// Derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed; one
/// <c>catch (IOException)</c> thus covers bad data as well as missing or unreadable files.
/// </summary>
public sealed class SafetensorsFormatException : IOException
{
    public SafetensorsFormatException(string filePath, string? tensorName, string detail, Exception? inner = null)
        : base(Format(filePath, tensorName, detail), inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The offending file as it was given (the message starts with it).</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault, or null when the problem is not tied to one tensor.</summary>
    public string? TensorName { get; }

    private static string Format(string filePath, string? tensorName, string detail)
    {
        string message = tensorName is null ? $"{filePath}: {detail}" : $"{filePath}: tensor {Quote(tensorName)}: {detail}";
        return MessageText.OneLine(message);
    }

    /// <summary>Quotes a name taken from a file for a message (tensor names are long, so more of them is kept).</summary>
    internal static string Quote(string name) => MessageText.Quote(name, maxChars: 200);
}
