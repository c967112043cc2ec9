namespace SharpTune.IO;

/// <summary>
/// Paths with their symbolic links resolved, and whether one lies inside a root: the one check behind every place
/// that confines file access to a folder (a confined dataset registry, the web board's roots).
/// </summary>
public static class ConfinedPath
{
    /// <summary>Links followed within one path before it is refused (Linux's limit).</summary>
    private const int MaxLinkDepth = 40;

    /// <summary>True when <paramref name="realPath"/> is <paramref name="realRoot"/> or lies below it (both already <see cref="RealPath"/>s).</summary>
    public static bool IsWithin(string realPath, string realRoot) =>
        realPath == realRoot || realPath.StartsWith(Path.TrimEndingDirectorySeparator(realRoot) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>
    /// The absolute path with every symbolic link along it resolved, components that do not exist kept as written
    /// (what realpath does, which .NET lacks).
    /// </summary>
    /// <exception cref="InvalidDataException">More than 40 links in a row (a loop).</exception>
    public static string RealPath(string path) => RealPath(path, 0);

    private static string RealPath(string path, int depth)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        foreach (string part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (info.LinkTarget is null) continue;
            if (depth >= MaxLinkDepth)
                throw new InvalidDataException($"'{path}': too many levels of symbolic links");
            // The link's target may itself lie behind links, so it is resolved the same way.
            current = RealPath(Path.Combine(Path.GetDirectoryName(current)!, info.LinkTarget), depth + 1);
        }
        return current;
    }
}
