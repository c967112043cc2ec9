using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace SharpTune.IO;

/// <summary>
/// Writes files and folders through a temporary sibling and a rename, so a crash never leaves a half-written file
/// or folder where a good one was (the rename is atomic on the same file system), and removes folders by renaming
/// them away first, so a crash never leaves a half-deleted one under its name. Every temporary name is
/// <c>.NAME.GUID.tmp</c> (<see cref="IsTemporary"/>): loaders skip them, and <see cref="RemoveStaleTemporaries"/>
/// clears those a killed process left. On Linux the parent folder is flushed after each rename, so the rename
/// itself survives a power cut.
/// </summary>
public static unsafe partial class AtomicFile
{
    /// <summary>
    /// Writes through a hidden temporary sibling, flushed to disk before the rename; on failure the temp file is
    /// removed and the target is untouched.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string temp = TemporarySibling(full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            FaultInjection.Point("file-written");
            File.Move(temp, full, overwrite: true);
            SyncDirectory(Path.GetDirectoryName(full)!);
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

    /// <summary>A hidden temporary name next to <paramref name="path"/> (a file or a folder), unique to this call.</summary>
    public static string TemporarySibling(string path)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>Whether a file or folder name is one of <see cref="TemporarySibling"/>'s.</summary>
    public static bool IsTemporary(string name) => TemporaryName().IsMatch(name);

    /// <summary>
    /// Puts the completed folder <paramref name="completed"/> (a <see cref="TemporarySibling"/> of
    /// <paramref name="destination"/>) in place of <paramref name="destination"/>. An existing destination is renamed
    /// away first (a folder cannot be renamed over a non-empty one) and deleted once the new one is in place, so a
    /// crash leaves the old folder, the new one, or neither under the name; never a mixture.
    /// </summary>
    public static void ReplaceDirectory(string completed, string destination)
    {
        string parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(destination)))!;
        SyncDirectory(completed);
        FaultInjection.Point("folder-written");
        if (!Directory.Exists(destination))
        {
            Directory.Move(completed, destination);
            SyncDirectory(parent);
            return;
        }
        string old = TemporarySibling(destination);
        Directory.Move(destination, old);
        FaultInjection.Point("folder-moved-aside");
        Directory.Move(completed, destination);
        SyncDirectory(parent);
        Directory.Delete(old, recursive: true);
    }

    /// <summary>Deletes a folder by renaming it to a temporary name first, so a crash midway leaves no part of it under its name.</summary>
    public static void DeleteDirectory(string path)
    {
        string doomed = TemporarySibling(path);
        Directory.Move(path, doomed);
        SyncDirectory(Path.GetDirectoryName(doomed)!);
        FaultInjection.Point("folder-renamed-for-delete");
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>
    /// Removes the temporary files and folders that killed writers left in <paramref name="dir"/> (only
    /// <see cref="IsTemporary"/> names; with <paramref name="ofName"/>, only the temporaries of that name). Call it
    /// only on a folder this process owns, before writing into it. Returns the names removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string dir, string? ofName = null)
    {
        if (!Directory.Exists(dir)) return [];
        var removed = new List<string>();
        foreach (string entry in Directory.EnumerateFileSystemEntries(dir, ".*.tmp"))
        {
            string name = Path.GetFileName(entry);
            if (!IsTemporary(name)) continue;
            if (ofName is not null && !(name.StartsWith($".{ofName}.", StringComparison.Ordinal) && name.Length == ofName.Length + TemporaryNameExtra)) continue;
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else File.Delete(entry);
            removed.Add(name);
        }
        return removed;
    }

    /// <summary>
    /// Flushes a folder's entries (new, renamed and removed names) to disk: fsync on the folder, which .NET cannot
    /// open as a stream. Linux with glibc only; elsewhere a no-op (Windows has no folder flush; NTFS journals renames).
    /// </summary>
    public static void SyncDirectory(string dir)
    {
        if (s_open == 0) return;
        byte[] path = System.Text.Encoding.UTF8.GetBytes(dir + "\0");
        int fd;
        fixed (byte* p = path) fd = ((delegate* unmanaged<byte*, int, int>)s_open)(p, OpenReadOnly | OpenCloseOnExec);
        if (fd < 0) throw new IOException($"cannot open folder {dir} to flush it to disk (errno {Marshal.GetLastSystemError()})");
        try
        {
            if (((delegate* unmanaged<int, int>)s_fsync)(fd) != 0)
                throw new IOException($"cannot flush folder {dir} to disk (errno {Marshal.GetLastSystemError()})");
        }
        finally
        {
            _ = ((delegate* unmanaged<int, int>)s_close)(fd);
        }
    }

    private const int OpenReadOnly = 0;
    private const int OpenCloseOnExec = 0x80000;
    /// <summary>"." + "." + 32 hex digits + ".tmp" around the name.</summary>
    private const int TemporaryNameExtra = 38;

    private static readonly nint s_open, s_fsync, s_close;

    static AtomicFile()
    {
        if (OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libc.so.6", out nint libc)
            && NativeLibrary.TryGetExport(libc, "open", out nint open)
            && NativeLibrary.TryGetExport(libc, "fsync", out s_fsync)
            && NativeLibrary.TryGetExport(libc, "close", out s_close))
            s_open = open;
    }

    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TemporaryName();
}
