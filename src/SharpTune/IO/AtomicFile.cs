namespace SharpTune.IO;

/// <summary>
/// Writes files through a temporary sibling and a rename, so a crash never leaves a half-written file where a
/// good one was (the rename is atomic on the same file system).
/// </summary>
public static class AtomicFile
{
    public static string TempPathFor(string path) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    public static void Write(string path, Action<Stream> write)
    {
        string temp = TempPathFor(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    public static void WriteText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, new System.Text.UTF8Encoding(false), leaveOpen: true); w.Write(text); });

    public static void Copy(string source, string destination) =>
        Write(destination, s => { using var src = File.OpenRead(source); src.CopyTo(s); });
}
