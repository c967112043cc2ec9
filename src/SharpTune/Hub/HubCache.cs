using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>
/// The local cache that Hugging Face's <c>huggingface_hub</c> keeps (and transformers, PEFT and LLaMA-Factory read):
/// <c>ROOT/models--ORG--NAME/refs/REVISION</c> holds a commit hash, <c>snapshots/COMMIT/</c> the files of that commit.
/// A model id given where a folder is expected is looked up here, so a model that Python tools (or
/// <c>huggingface-cli download</c>) already fetched is used without a download.
/// </summary>
public static partial class HubCache
{
    /// <summary>
    /// The cache folder as huggingface_hub picks it: <c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else
    /// <c>XDG_CACHE_HOME/huggingface/hub</c>, else <c>~/.cache/huggingface/hub</c>.
    /// </summary>
    public static string Root() =>
        Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hubCache ? hubCache : Path.Combine(Home(), "hub");

    /// <summary>huggingface_hub's home (cache and token file): <c>HF_HOME</c>, else <c>XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    public static string Home()
    {
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return home;
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "huggingface");
    }

    /// <summary>A repository id as the Hub writes them: <c>NAME</c> or <c>ORG/NAME</c> of letters, digits, '-', '_' and '.'.</summary>
    public static bool IsRepoId(string text) => RepoIdPattern().IsMatch(text) && !text.Contains("..", StringComparison.Ordinal);

    /// <summary>
    /// The snapshot folder of <paramref name="repoId"/> at <paramref name="revision"/> (a branch or tag name whose
    /// ref the cache holds, or a commit hash) in the cache at <paramref name="root"/>; null when it is not there.
    /// </summary>
    public static string? FindSnapshot(string repoId, string revision, string root)
    {
        if (!IsRepoId(repoId)) return null;
        string repo = RepoFolder(root, "model", repoId);
        string? commit = CachedCommit(repo, revision);
        if (commit is null) return null;
        string snapshot = Path.Combine(repo, "snapshots", commit);
        return Directory.Exists(snapshot) ? snapshot : null;
    }

    /// <summary>A repository's folder in the cache, named as huggingface_hub's repo_folder_name: <c>models--ORG--NAME</c>, <c>datasets--ORG--NAME</c>.</summary>
    public static string RepoFolder(string root, string repoType, string repoId) =>
        Path.Combine(root, $"{repoType}s--{repoId.Replace("/", "--", StringComparison.Ordinal)}");

    /// <summary>The commit a revision names in the repository folder <paramref name="repo"/>: itself when it is a commit hash, else what its ref holds; null when unknown.</summary>
    public static string? CachedCommit(string repo, string revision)
    {
        if (IsCommit(revision)) return revision;
        string reference = Path.Combine(repo, "refs", revision);
        if (!File.Exists(reference)) return null;
        string commit = File.ReadAllText(reference).Trim();
        return IsCommit(commit) ? commit : null;
    }

    /// <summary>Whether a revision is a full commit hash (40 lowercase hex digits), which never moves.</summary>
    public static bool IsCommit(string revision) => CommitPattern().IsMatch(revision);

    /// <summary>
    /// What a model argument names: the folder when one exists (relative to <paramref name="workingDirectory"/>), else
    /// the cached snapshot of a repository id with its id, else null.
    /// </summary>
    public static (string Folder, string? RepoId)? Resolve(string nameOrPath, string revision, string workingDirectory)
    {
        string full = Path.GetFullPath(nameOrPath, workingDirectory);
        if (Directory.Exists(full)) return (full, null);
        return FindSnapshot(nameOrPath, revision, Root()) is { } snapshot ? (snapshot, nameOrPath) : null;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();
}
