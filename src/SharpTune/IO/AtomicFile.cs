namespace SharpTune.IO;

/// <summary>
/// Writes files through a temporary sibling and a rename, so a crash never leaves a half-written file where a
/// good one was (the rename is atomic on the same file system).
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes through a hidden ".tmp" sibling, flushed to disk before the rename; on failure the temp file is
    /// removed and the target is untouched. Loaders skip "*.tmp", so leftovers of a crash are never read.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
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
