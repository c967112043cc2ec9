using System.Collections.Concurrent;
using SharpTune.IO;

namespace SharpTune.Hub;

/// <summary>
/// Downloads a ModelScope model or dataset into the cache the modelscope library keeps (hub/snapshot_download.py,
/// file_utils get_model_cache_root and get_dataset_cache_root, caching.ModelFileSystemCache), so LLaMA-Factory with
/// <c>USE_MODELSCOPE_HUB=1</c> and SharpTune share it: <c>ROOT/models/ORG/NAME/PATH</c> (a dataset's under
/// <c>ROOT/datasets</c>), the files themselves (no blobs, no symlinks), a '.' of NAME written '___' as modelscope
/// masks it. A file is fetched into <c>ROOT/models/._____temp/ORG/NAME/PATH</c> (<c>ROOT/datasets/._____temp/...</c>) first
/// (kept when the download stops, resumed with Range next time), checked against the listing's size and sha256,
/// and only then renamed into the model folder. A file already there is kept when its size and sha256 match the
/// listing, as modelscope's hash validation keeps it; modelscope's own index files (<c>.msc</c>, <c>.mv</c>,
/// Python pickles) are not written, so modelscope checks a folder SharpTune filled by fetching it once more.
/// </summary>
public static class ModelScopeDownload
{
    /// <summary>modelscope's TEMPORARY_FOLDER_NAME, under the models or datasets root.</summary>
    private const string TemporaryFolder = "._____temp";

    /// <summary>modelscope's model group for an id without one.</summary>
    private const string DefaultGroup = "damo";

    /// <summary>modelscope's cache root: <c>MODELSCOPE_CACHE</c>, else <c>~/.cache/modelscope/hub</c>.</summary>
    public static string Root() =>
        Environment.GetEnvironmentVariable("MODELSCOPE_CACHE") is { Length: > 0 } cache
            ? cache
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "modelscope", "hub");

    /// <summary>The folder that holds the files of the model or dataset <paramref name="repoId"/> in the cache at <paramref name="root"/>.</summary>
    public static string RepoFolder(string root, string repoType, string repoId)
    {
        var (group, name) = GroupAndName(repoId);
        return Path.Combine(root, TypeFolder(repoType), group, name.Replace(".", "___", StringComparison.Ordinal));
    }

    /// <summary>modelscope's cache roots: models under <c>models</c>, datasets under <c>datasets</c>.</summary>
    private static string TypeFolder(string repoType) => repoType == "dataset" ? "datasets" : "models";

    /// <summary>
    /// The folder of the model or dataset <paramref name="repoId"/> with every file at <paramref name="revision"/> that matches
    /// <paramref name="include"/> (all when empty) and no pattern of <paramref name="exclude"/>, downloading what is
    /// missing or differs from the listing. Offline or when ModelScope cannot be reached, the cache alone.
    /// </summary>
    public static async Task<string> SnapshotAsync(HubSettings settings, string repoType, string repoId, string revision,
        IReadOnlyList<string> include, IReadOnlyList<string> exclude, TextWriter log, CancellationToken cancel = default)
    {
        if (repoType is not ("model" or "dataset")) throw new HubException($"downloading a {repoType} repository from ModelScope is not supported: only models and datasets are");
        if (!HubCache.IsRepoId(repoId)) throw new HubException($"'{repoId}' is not a ModelScope {repoType} id (NAME or ORG/NAME)");
        // modelscope's get_dataset_files takes only ORG/NAME: datasets have no default group.
        if (repoType == "dataset" && !repoId.Contains('/')) throw new HubException($"'{repoId}' is not a ModelScope dataset id (ORG/NAME)");
        if (revision.Length == 0 || revision.Split('/').Any(part => part is "" or "." or ".."))
            throw new HubException($"revision '{revision}' is not a branch, tag or commit name");
        // LLaMA-Factory's try_download_model_from_other_hub: Hugging Face's default branch is ModelScope's master.
        if (revision == "main") revision = "master";
        var (group, name) = GroupAndName(repoId);
        repoId = $"{group}/{name}";
        string folder = RepoFolder(settings.CacheRoot, repoType, repoId);
        if (settings.Offline) return FromCache(settings, folder, repoId, revision, include, exclude, "HF_HUB_OFFLINE is set, so nothing is downloaded");

        using var client = new ModelScopeClient(settings);
        IReadOnlyList<HubFile> files;
        try
        {
            files = await client.ListFilesAsync(repoType, repoId, revision, cancel).ConfigureAwait(false);
        }
        catch (HubUnreachableException e)
        {
            return FromCache(settings, folder, repoId, revision, include, exclude, e.Message);
        }
        foreach (var file in files) HubDownload.RequireSafePath(repoId, file.Path);
        var byPath = files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var wanted = HubGlob.Filter(byPath.Keys, include, exclude).Select(p => byPath[p]).ToList();
        if (wanted.Count == 0)
            throw new HubException($"no file of '{repoId}' at revision '{revision}' matches the include/exclude patterns ({files.Count} files in the {repoType})");
        var missing = new List<HubFile>();
        foreach (var file in wanted)
            if (!await IsCurrent(Path.Combine(folder, file.Path), file, cancel).ConfigureAwait(false)) missing.Add(file);
        Directory.CreateDirectory(folder);
        if (missing.Count == 0) return folder;

        string temporary = Path.Combine(settings.CacheRoot, TypeFolder(repoType), TemporaryFolder, group, name);
        using var progress = new HubProgress(log, $"Fetching {missing.Count} file{(missing.Count == 1 ? "" : "s")}", missing.Sum(f => f.Size),
            interactive: ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected);
        await Parallel.ForEachAsync(missing, new ParallelOptions { MaxDegreeOfParallelism = HubDownload.ParallelFiles, CancellationToken = cancel }, async (file, ct) =>
        {
            string target = Path.Combine(folder, file.Path), incomplete = Path.Combine(temporary, file.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
            await HubDownload.DownloadBlob(client.Transfer, repoId, file.Path, file.Size, client.FileUrl(repoType, repoId, revision, file.Path), incomplete, target,
                file.Sha256, progress.Add, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return folder;
    }

    /// <summary>
    /// What a model or adapter argument names when ModelScope is the hub: a folder when one exists (relative to
    /// <paramref name="workingDirectory"/>); else a ModelScope id's folder in the cache, with its model files
    /// (<see cref="HubDownload.ModelFiles"/>) checked against the listing and fetched when missing; else null.
    /// </summary>
    public static (string Folder, string? RepoId)? ResolveModel(string nameOrPath, string revision, string workingDirectory, HubSettings settings, TextWriter log)
    {
        string full = Path.GetFullPath(nameOrPath, workingDirectory);
        if (Directory.Exists(full)) return (full, null);
        if (!HubCache.IsRepoId(nameOrPath)) return null;
        if (!settings.Offline) log.WriteLine($"[sharptune] '{nameOrPath}' is not a local folder: looking it up on ModelScope ({settings.Endpoint})");
        return (SnapshotAsync(settings, "model", nameOrPath, revision, HubDownload.ModelFiles, [], log).GetAwaiter().GetResult(), nameOrPath);
    }

    private static (string Group, string Name) GroupAndName(string repoId) =>
        repoId.IndexOf('/') is var slash and >= 0 ? (repoId[..slash], repoId[(slash + 1)..]) : (DefaultGroup, repoId);

    /// <summary>Whether the cached file is the listed one: its size, and its sha256 when the listing gives one.</summary>
    private static async Task<bool> IsCurrent(string path, HubFile file, CancellationToken cancel) =>
        File.Exists(path) && new FileInfo(path).Length == file.Size
        && (file.Sha256 is null || string.Equals(await HubDownload.FileSha256(path, cancel).ConfigureAwait(false), file.Sha256, StringComparison.OrdinalIgnoreCase));

    /// <summary>Without the listing, the cached folder serves when it holds files that match the patterns.</summary>
    private static string FromCache(HubSettings settings, string folder, string repoId, string revision,
        IReadOnlyList<string> include, IReadOnlyList<string> exclude, string reason)
    {
        if (Directory.Exists(folder))
        {
            var cached = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/'));
            if (HubGlob.Filter(cached, include, exclude).Any()) return folder;
        }
        throw new HubException($"'{repoId}' at revision '{revision}' is not in the ModelScope cache ({settings.CacheRoot}), and {reason}");
    }
}
