using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.IO;

namespace SharpTune.Hub;

/// <summary>
/// Downloads a repository's files into the Hugging Face cache exactly as huggingface_hub's snapshot_download lays
/// them out, so Python tools and SharpTune share one cache: <c>REPO/blobs/ETAG</c> holds each file's bytes (ETAG
/// is the LFS sha256, or the git blob id of a plain file), <c>REPO/snapshots/COMMIT/PATH</c> is a relative symlink
/// to its blob, <c>REPO/refs/REVISION</c> holds the commit a branch or tag named, and <c>REPO/trees/COMMIT.json</c>
/// the commit's file list (huggingface_hub's tree cache), so a commit already listed needs no request at all.
/// A blob is written as <c>ETAG.incomplete</c> first (kept when the download stops, resumed with Range next
/// time), checked against its size and, for LFS files, its sha256, and only then renamed and linked: nothing
/// half-written ever appears under <c>snapshots/</c>.
/// </summary>
public static partial class HubDownload
{
    /// <summary>What a model or adapter needs, as LLaMA-Factory loads it: configs, safetensors weights, tokenizer files, chat template.</summary>
    public static readonly IReadOnlyList<string> ModelFiles = ["*.json", "*.safetensors", "merges.txt", "tokenizer.model", "*.jinja"];

    /// <summary>huggingface_hub's default number of files fetched at once.</summary>
    internal const int ParallelFiles = 8;

    /// <summary>
    /// The snapshot folder of <paramref name="repoId"/> at <paramref name="revision"/> with every file that matches
    /// <paramref name="include"/> (all when empty) and no pattern of <paramref name="exclude"/>, downloading what the
    /// cache lacks. Offline (<see cref="HubSettings.Offline"/>) or when the Hub cannot be reached, the cache alone.
    /// Settings for ModelScope (<see cref="HubSettings.Kind"/>) go to <see cref="ModelScopeDownload"/> and its cache.
    /// </summary>
    public static string Snapshot(HubSettings settings, string repoType, string repoId, string revision,
        IReadOnlyList<string> include, IReadOnlyList<string> exclude, TextWriter log, CancellationToken cancel = default) =>
        SnapshotAsync(settings, repoType, repoId, revision, include, exclude, log, cancel).GetAwaiter().GetResult();

    public static async Task<string> SnapshotAsync(HubSettings settings, string repoType, string repoId, string revision,
        IReadOnlyList<string> include, IReadOnlyList<string> exclude, TextWriter log, CancellationToken cancel = default)
    {
        if (settings.Kind == HubKind.ModelScope)
            return await ModelScopeDownload.SnapshotAsync(settings, repoType, repoId, revision, include, exclude, log, cancel).ConfigureAwait(false);
        if (repoType is not ("model" or "dataset")) throw new HubException($"repository type '{repoType}' is not one of model, dataset");
        if (!HubCache.IsRepoId(repoId)) throw new HubException($"'{repoId}' is not a Hub repository id (NAME or ORG/NAME)");
        if (revision.Length == 0 || revision.Split('/').Any(part => part is "" or "." or ".."))
            throw new HubException($"revision '{revision}' is not a branch, tag or commit name");
        string repo = HubCache.RepoFolder(settings.CacheRoot, repoType, repoId);
        if (settings.Offline) return FromCache(settings, repo, repoId, revision, include, exclude, "HF_HUB_OFFLINE is set, so nothing is downloaded");

        using var client = new HubClient(settings);
        string? commit = HubCache.IsCommit(revision) ? revision : null;
        IReadOnlyList<HubFile>? files = commit is null ? null : ReadTree(repo, commit);
        if (files is null)
        {
            HubRepoInfo info;
            try
            {
                info = await client.RepoInfoAsync(repoType, repoId, revision, cancel).ConfigureAwait(false);
            }
            catch (HubUnreachableException e)
            {
                return FromCache(settings, repo, repoId, revision, include, exclude, e.Message);
            }
            (commit, files) = (info.Commit, info.Files);
            foreach (var file in files) RequireSafePath(repoId, file.Path);
            Directory.CreateDirectory(Path.Combine(repo, "trees"));
            WriteTree(repo, commit, files);
        }
        if (revision != commit)
        {
            string reference = Path.Combine(repo, "refs", revision);
            Directory.CreateDirectory(Path.GetDirectoryName(reference)!);
            AtomicFile.WriteText(reference, commit!);
        }

        var byPath = files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var wanted = HubGlob.Filter(byPath.Keys, include, exclude).Select(p => byPath[p]).ToList();
        if (wanted.Count == 0)
            throw new HubException($"no file of '{repoId}' at revision '{revision}' matches the include/exclude patterns ({files.Count} files in the repository)");
        string snapshot = Path.Combine(repo, "snapshots", commit!);
        var missing = wanted.Where(f => !IsComplete(Path.Combine(snapshot, f.Path), f.Size)).ToList();
        if (missing.Count > 0)
        {
            using var progress = new HubProgress(log, $"Fetching {missing.Count} file{(missing.Count == 1 ? "" : "s")}", missing.Sum(f => Math.Max(f.Size, 0)),
                interactive: ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected);
            // Files with the same content share one blob: one of them downloads it while the others wait, then link it.
            var blobLocks = new ConcurrentDictionary<string, SemaphoreSlim>(StringComparer.Ordinal);
            await Parallel.ForEachAsync(missing, new ParallelOptions { MaxDegreeOfParallelism = ParallelFiles, CancellationToken = cancel },
                (file, ct) => new ValueTask(FetchFile(client, repoType, repoId, repo, commit!, file, blobLocks, progress.Add, ct))).ConfigureAwait(false);
        }
        Directory.CreateDirectory(snapshot);
        return snapshot;
    }

    /// <summary>
    /// What a model or adapter argument names: a folder when one exists (relative to <paramref name="workingDirectory"/>);
    /// else a Hub id's snapshot, from the cache when it is there, downloaded (<see cref="ModelFiles"/> only) when it
    /// is not; else null (neither a folder nor a Hub id). The hub is the one <paramref name="settings"/> name.
    /// </summary>
    public static (string Folder, string? RepoId)? ResolveModel(string nameOrPath, string revision, string workingDirectory, HubSettings settings, TextWriter log)
    {
        if (settings.Kind == HubKind.ModelScope) return ModelScopeDownload.ResolveModel(nameOrPath, revision, workingDirectory, settings, log);
        string full = Path.GetFullPath(nameOrPath, workingDirectory);
        if (Directory.Exists(full)) return (full, null);
        if (!HubCache.IsRepoId(nameOrPath)) return null;
        // A snapshot that an earlier download left without some model files (an --include, say) is completed first.
        if (HubCache.FindSnapshot(nameOrPath, revision, settings.CacheRoot) is { } cached
            && MissingFromSnapshot(HubCache.RepoFolder(settings.CacheRoot, "model", nameOrPath), Path.GetFileName(cached), ModelFiles, []).Count == 0)
            return (cached, nameOrPath);
        if (!settings.Offline) log.WriteLine($"[sharptune] '{nameOrPath}' is not a local folder: fetching it from the Hugging Face Hub ({settings.Endpoint})");
        return (Snapshot(settings, "model", nameOrPath, revision, ModelFiles, [], log), nameOrPath);
    }

    /// <summary>
    /// The folder a command-line model or adapter argument names (<see cref="ResolveModel"/> at <c>main</c>, against
    /// the current directory, progress on stderr); the argument unchanged when it is neither a folder nor a Hub id,
    /// for the folder check to name.
    /// </summary>
    public static string FolderFor(string nameOrPath) =>
        ResolveModel(nameOrPath, "main", Environment.CurrentDirectory, HubSettings.FromEnvironment(), Console.Error)?.Folder ?? nameOrPath;

    private static string FromCache(HubSettings settings, string repo, string repoId, string revision,
        IReadOnlyList<string> include, IReadOnlyList<string> exclude, string reason)
    {
        string? commit = HubCache.CachedCommit(repo, revision);
        string? snapshot = commit is null ? null : Path.Combine(repo, "snapshots", commit);
        if (snapshot is not null && Directory.Exists(snapshot))
        {
            var absent = MissingFromSnapshot(repo, commit!, include, exclude);
            if (absent.Count == 0) return snapshot;
            throw new HubException($"'{repoId}' at revision '{revision}' is only partly in the Hugging Face cache ({settings.CacheRoot}: {absent.Count} file(s) missing, e.g. '{absent[0]}'), and {reason}");
        }
        throw new HubException($"'{repoId}' at revision '{revision}' is not in the Hugging Face cache ({settings.CacheRoot}), and {reason}");
    }

    /// <summary>
    /// The files of the commit's listing that match the patterns and are not in its snapshot folder. Without a
    /// listing (a cache Python filled before it kept one) nothing is known to be missing, and the snapshot is taken as
    /// it is, as huggingface_hub takes it.
    /// </summary>
    private static List<string> MissingFromSnapshot(string repo, string commit, IReadOnlyList<string> include, IReadOnlyList<string> exclude)
    {
        string snapshot = Path.Combine(repo, "snapshots", commit);
        return ReadTree(repo, commit) is { } listed
            ? HubGlob.Filter(listed.Select(f => f.Path), include, exclude).Where(p => !File.Exists(Path.Combine(snapshot, p))).ToList()
            : [];
    }

    /// <summary>Whether a snapshot entry is there and resolves to a file of the listed size (a truncated or damaged blob is fetched again).</summary>
    private static bool IsComplete(string path, long size)
    {
        if (!File.Exists(path)) return false;
        // FileInfo of a symlink describes the link itself; its final target holds the bytes.
        var file = new FileInfo(path);
        return size < 0 || ((file.LinkTarget is null ? file : file.ResolveLinkTarget(returnFinalTarget: true)) as FileInfo)?.Length == size;
    }

    private static async Task FetchFile(HubClient client, string repoType, string repoId, string repo, string commit, HubFile file,
        ConcurrentDictionary<string, SemaphoreSlim> blobLocks, Action<long> progress, CancellationToken cancel)
    {
        var metadata = await client.FileMetadataAsync(repoType, repoId, commit, file.Path, cancel).ConfigureAwait(false);
        if (!EtagPattern().IsMatch(metadata.Etag))
            throw new HubException($"'{repoId}' file '{file.Path}': the Hub's ETag '{metadata.Etag}' cannot name a blob");
        string blobs = Path.Combine(repo, "blobs");
        Directory.CreateDirectory(blobs);
        string blob = Path.Combine(blobs, metadata.Etag);
        // An LFS file's ETag is its sha256 (the listing says so too): the bytes are checked against it.
        string? sha256 = file.Sha256 ?? (Sha256Pattern().IsMatch(metadata.Etag) ? metadata.Etag : null);
        var blobLock = blobLocks.GetOrAdd(blob, _ => new SemaphoreSlim(1));
        await blobLock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            if (!(File.Exists(blob) && new FileInfo(blob).Length == metadata.Size))
                await DownloadBlob(client, repoId, file.Path, metadata.Size, metadata.Location, blob + ".incomplete", blob, sha256, progress, cancel).ConfigureAwait(false);
            else progress(metadata.Size);
        }
        finally
        {
            blobLock.Release();
        }
        Link(Path.Combine(repo, "snapshots", commit, file.Path), blob);
    }

    /// <summary>
    /// Fetches <paramref name="location"/> into <paramref name="incomplete"/> (resuming what a stopped download left
    /// there), checks its size and sha256, and only then renames it to <paramref name="blob"/>.
    /// </summary>
    internal static async Task DownloadBlob(HubClient client, string repoId, string path, long size, Uri location, string incomplete, string blob,
        string? sha256, Action<long> progress, CancellationToken cancel)
    {
        for (int attempt = 0; ; attempt++)
        {
            long had = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            RequireSpace(Path.GetDirectoryName(blob)!, size - had, path);
            try
            {
                // Unbuffered: every chunk reaches the file before the next is read, so a kill leaves all bytes received.
                await using var stream = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, bufferSize: 0, useAsync: true);
                if (stream.Length > size) stream.SetLength(0);
                progress(stream.Length);
                if (stream.Length < size) await client.DownloadAsync(location, stream, progress, cancel).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }
            catch (IOException e) when (e.HResult == DiskFullErrno || e.HResult == WindowsDiskFull)
            {
                throw new HubException($"disk full while writing '{path}' of '{repoId}' to {Path.GetDirectoryName(blob)}: free some space and run again (the partial download is kept and resumes)", e);
            }
            catch (IOException e)
            {
                throw new HubException($"download of '{path}' of '{repoId}' stopped ({e.Message.ReplaceLineEndings(" ")}); run again to resume it", e);
            }
            long got = new FileInfo(incomplete).Length;
            if (got < size)
                throw new HubException($"download of '{path}' of '{repoId}' stopped at {got} of {size} bytes; run again to resume it");
            if (got > size || (sha256 is not null && !string.Equals(await FileSha256(incomplete, cancel).ConfigureAwait(false), sha256, StringComparison.Ordinal)))
            {
                File.Delete(incomplete);
                progress(-got);
                // A resumed file may begin with bytes of another version of the file: one fresh download settles it.
                if (attempt == 0) continue;
                throw new HubException($"'{path}' of '{repoId}' does not match its {(sha256 is null ? $"size ({size} bytes)" : $"sha256 {sha256}")} after a fresh download; the file was discarded");
            }
            File.Move(incomplete, blob, overwrite: true);
            AtomicFile.SyncDirectory(Path.GetDirectoryName(blob)!);
            return;
        }
    }

    /// <summary>Points the snapshot entry at its blob with a relative symlink (a copy where links are not allowed), put in place by a rename.</summary>
    private static void Link(string entry, string blob)
    {
        string folder = Path.GetDirectoryName(entry)!;
        Directory.CreateDirectory(folder);
        string temporary = AtomicFile.TemporarySibling(entry);
        try
        {
            File.CreateSymbolicLink(temporary, Path.GetRelativePath(folder, blob));
            File.Move(temporary, entry, overwrite: true);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException && OperatingSystem.IsWindows())
        {
            File.Delete(temporary);
            AtomicFile.Copy(blob, entry);
        }
    }

    private static void RequireSpace(string folder, long bytes, string path)
    {
        long free = new DriveInfo(folder).AvailableFreeSpace;
        if (bytes > free)
            throw new HubException($"not enough disk space for '{path}' in {folder}: it needs {HubProgress.FormatBytes(bytes)} more and {HubProgress.FormatBytes(free)} are free");
    }

    internal static async Task<string> FileSha256(string path, CancellationToken cancel)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancel).ConfigureAwait(false));
    }

    /// <summary>A listed path must stay inside the snapshot folder.</summary>
    internal static void RequireSafePath(string repoId, string path)
    {
        if (path.Length == 0 || Path.IsPathRooted(path) || path.Contains('\\', StringComparison.Ordinal) || path.Split('/').Any(part => part is "" or "." or ".."))
            throw new HubException($"'{repoId}': the Hub listed a file path '{path}' that would leave the snapshot folder");
    }

    /// <summary>huggingface_hub's tree cache file, <c>trees/COMMIT.json</c> (format_version 1); null when absent or unreadable.</summary>
    private static List<HubFile>? ReadTree(string repo, string commit)
    {
        string path = Path.Combine(repo, "trees", commit + ".json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.GetProperty("format_version").GetInt32() != 1) return null;
            var files = new List<HubFile>();
            foreach (var entry in doc.RootElement.GetProperty("files").EnumerateObject())
            {
                RequireSafePath(repo, entry.Name);
                files.Add(new HubFile(entry.Name, entry.Value.GetProperty("size").GetInt64(), entry.Value.GetProperty("blob_id").GetString() ?? "",
                    entry.Value.TryGetProperty("lfs_sha256", out var sha) && sha.ValueKind == JsonValueKind.String ? sha.GetString() : null));
            }
            return files;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or HubException)
        {
            return null;
        }
    }

    private static void WriteTree(string repo, string commit, IReadOnlyList<HubFile> files)
    {
        var entries = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var f in files)
            entries[f.Path] = f.Sha256 is null
                ? new Dictionary<string, object> { ["size"] = f.Size, ["blob_id"] = f.BlobId }
                : new Dictionary<string, object> { ["size"] = f.Size, ["blob_id"] = f.BlobId, ["lfs_sha256"] = f.Sha256, ["lfs_size"] = f.Size };
        string json = JsonSerializer.Serialize(new Dictionary<string, object> { ["format_version"] = 1, ["files"] = entries },
            new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteText(Path.Combine(repo, "trees", commit + ".json"), json);
    }

    /// <summary>ENOSPC as .NET reports it on Unix (the errno) and ERROR_DISK_FULL's HRESULT on Windows.</summary>
    private const int DiskFullErrno = 28;
    private const int WindowsDiskFull = unchecked((int)0x80070070);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex EtagPattern();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Pattern();
}
