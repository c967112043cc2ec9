using SharpTune.IO;

namespace SharpTune.Board;

/// <summary>The folders the board may touch; every file-touching endpoint names the ones it needs.</summary>
public enum BoardRoot
{
    /// <summary><c>ROOT/models</c>: model folders.</summary>
    Models,
    /// <summary><c>ROOT/data</c>: dataset folders with their dataset_info.json.</summary>
    Data,
    /// <summary><c>ROOT/saves</c>: runs (<c>saves/MODEL/TYPE/train_TIMESTAMP</c>), adapters, exports.</summary>
    Saves,
    /// <summary>The local Hugging Face hub cache: downloaded models, read only.</summary>
    HubCache,
}

/// <summary>
/// Confines the board's file access: a path from a request (relative to the board's root, or absolute) is resolved
/// with its symbolic links (<see cref="ConfinedPath.RealPath"/>) and refused with 403 unless it lies inside one of
/// the roots the endpoint allows. Every endpoint that reads or writes a file goes through <see cref="Confine"/>.
/// </summary>
public sealed class BoardRoots
{
    private readonly Dictionary<BoardRoot, string> _real;

    /// <summary>The board's folder (<c>--root</c>), real path.</summary>
    public string Root { get; }

    public BoardRoots(string root, string hubCache)
    {
        Root = ConfinedPath.RealPath(root);
        _real = new Dictionary<BoardRoot, string>
        {
            [BoardRoot.Models] = Path.Combine(Root, "models"),
            [BoardRoot.Data] = Path.Combine(Root, "data"),
            [BoardRoot.Saves] = Path.Combine(Root, "saves"),
            [BoardRoot.HubCache] = ConfinedPath.RealPath(hubCache),
        };
    }

    /// <summary>The folder of a root (it may not exist yet).</summary>
    public string this[BoardRoot root] => _real[root];

    /// <summary>
    /// The real path of <paramref name="path"/> (relative to <see cref="Root"/> or absolute) when it lies inside one
    /// of <paramref name="allowed"/>; else a 403 naming the path and the roots it may be in.
    /// </summary>
    public string Confine(string path, params BoardRoot[] allowed)
    {
        if (string.IsNullOrWhiteSpace(path) || path.Contains('\0'))
            throw BoardException.BadRequest("an empty path or one with a NUL character is not a path");
        string real;
        try
        {
            real = ConfinedPath.RealPath(Path.IsPathRooted(path) ? path : Path.Combine(Root, path));
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new BoardException(403, $"{BoardException.Quote(path)} cannot be resolved: {e.Message}");
        }
        foreach (var root in allowed)
            if (ConfinedPath.IsWithin(real, ConfinedPath.RealPath(_real[root]))) return real;
        throw new BoardException(403,
            $"{BoardException.Quote(path)} is outside the folders this board may use here ({string.Join(", ", allowed.Select(r => _real[r]))})");
    }

    /// <summary>A path as the page shows it: relative to the board's root when inside it, else absolute.</summary>
    public string Display(string realPath) =>
        ConfinedPath.IsWithin(realPath, Root) && realPath != Root ? Path.GetRelativePath(Root, realPath) : realPath;
}
