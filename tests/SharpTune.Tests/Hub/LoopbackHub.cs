using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharpTune.Tests.Hub;

/// <summary>
/// A stand-in for the Hugging Face Hub on loopback, speaking its protocol as huggingface_hub expects it: the
/// repository API (<c>/api/models/ID/revision/REV?blobs=true</c>: sha, siblings with size, blobId and lfs),
/// HEAD/GET on <c>/ID/resolve/REV/FILE</c> with X-Repo-Commit and either a relative 307 to where a plain file is
/// served with its ETag (its git blob id), or a 302 to a
/// second host (the "CDN", another loopback address) with X-Linked-Etag (the LFS sha256) and X-Linked-Size, and
/// the Hub's errors (X-Error-Code RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). The CDN honours or
/// ignores Range, and can stall mid-file. Every request is logged with its Range and Authorization.
/// </summary>
public sealed class LoopbackHub : IAsyncDisposable
{
    public const string RepoId = "local-test-org/tiny";
    public const string Commit = "c0ffee0123456789abcdef0123456789abcdef01";

    private readonly WebApplication _hub;
    private readonly WebApplication _cdn;
    /// <summary>Repositories by "models/ID" or "datasets/ID".</summary>
    private readonly ConcurrentDictionary<string, Dictionary<string, byte[]>> _repos = new(StringComparer.Ordinal);

    public string Endpoint { get; }
    public string CdnEndpoint { get; }

    /// <summary>"HOST METHOD PATH range=R auth=A" per request.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>When set, the repository is private to this token (401 RepoNotFound otherwise).</summary>
    public string? RequiredToken { get; set; }
    public bool Gated { get; set; }
    public bool IgnoreRange { get; set; }
    /// <summary>When set, every Hub request gets a web page with this status, as a misconfigured mirror or a proxy gives.</summary>
    public int? AnswerHtml { get; set; }

    /// <summary>When set, the CDN sends this many bytes of a file, then holds the connection until the client goes away.</summary>
    public long? StallAfter { get; set; }

    public LoopbackHub(string modelDir)
    {
        AddRepo(RepoId, modelDir);
        _hub = Build(IPAddress.Loopback, ServeHub);
        _cdn = Build(IPAddress.Parse("127.0.0.2"), ServeCdn);
        _hub.StartAsync().GetAwaiter().GetResult();
        _cdn.StartAsync().GetAwaiter().GetResult();
        Endpoint = _hub.Urls.Single();
        CdnEndpoint = _cdn.Urls.Single();
    }

    /// <summary>The files of <see cref="RepoId"/>.</summary>
    public IReadOnlyDictionary<string, byte[]> Files => _repos["models/" + RepoId];

    /// <summary>Serves the files of <paramref name="dir"/> (not its subfolders) as the repository <paramref name="repoId"/> at <see cref="Commit"/>.</summary>
    public void AddRepo(string repoId, string dir, string repoType = "model") =>
        _repos[$"{repoType}s/{repoId}"] = Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);

    /// <summary>Serves <paramref name="files"/> (repository path → bytes, paths with folders) as <paramref name="repoId"/> at <see cref="Commit"/>.</summary>
    public void AddRepo(string repoId, IReadOnlyDictionary<string, byte[]> files, string repoType) =>
        _repos[$"{repoType}s/{repoId}"] = new Dictionary<string, byte[]>(files, StringComparer.Ordinal);

    /// <summary>Files stored in LFS, as the Hub stores weights and Parquet data: served through the CDN.</summary>
    public static bool IsLfs(string path) => path.EndsWith(".safetensors", StringComparison.Ordinal) || path.EndsWith(".parquet", StringComparison.Ordinal);

    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>git's blob id: sha1 of "blob LENGTH\0" + content, the ETag of a plain file.</summary>
    public static string GitBlobId(byte[] data) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));

    public static string Etag(string path, byte[] data) => IsLfs(path) ? Sha256(data) : GitBlobId(data);

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        await _cdn.DisposeAsync();
    }

    private static WebApplication Build(IPAddress address, RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(address, 0));
        var app = builder.Build();
        app.Run(handler);
        return app;
    }

    private void Log(HttpContext c) =>
        Requests.Enqueue($"{c.Request.Host} {c.Request.Method} {c.Request.Path} range={c.Request.Headers.Range} auth={c.Request.Headers.Authorization}");

    private async Task ServeHub(HttpContext c)
    {
        Log(c);
        if (AnswerHtml is { } htmlStatus)
        {
            c.Response.StatusCode = htmlStatus;
            c.Response.ContentType = "text/html";
            await c.Response.WriteAsync("<!DOCTYPE html><html><body>Welcome to our mirror</body></html>");
            return;
        }
        string path = Uri.UnescapeDataString(c.Request.Path.Value!);
        // The Hub's three URL shapes: /api/{models|datasets}/ID/..., /api/resolve-cache/{models|datasets}/ID/..., and
        // /ID/resolve/... for a model but /datasets/ID/resolve/... for a dataset.
        string? key = null, kind = null, rest = null;
        foreach (string candidate in _repos.Keys)
        {
            string web = candidate.StartsWith("models/", StringComparison.Ordinal) ? candidate["models/".Length..] : candidate;
            foreach (var (prefix, what) in new[] { ($"{ResolveCache}{candidate}/", "cached"), ($"/api/{candidate}/", "api"), ($"/{web}/", "resolve") })
            {
                if (key is null && path.StartsWith(prefix, StringComparison.Ordinal)) (key, kind, rest) = (candidate, what, path[prefix.Length..]);
            }
        }
        if (key is null || rest is null)
        {
            await Error(c, 401, "RepoNotFound", "Repository not found");
            return;
        }
        var files = _repos[key];
        string repoId = key[(key.IndexOf('/') + 1)..];
        string? token = c.Request.Headers.Authorization.ToString() is { Length: > 7 } auth ? auth["Bearer ".Length..] : null;
        if (RequiredToken is not null && token != RequiredToken)
        {
            await Error(c, 401, "RepoNotFound", "Repository not found");
            return;
        }
        if (Gated && token is null)
        {
            await Error(c, 403, "GatedRepo", $"Access to model {repoId} is restricted. You must have access to it and be authenticated to access it.");
            return;
        }
        if (kind == "api" && rest.StartsWith("revision/", StringComparison.Ordinal))
        {
            if (!KnownRevision(rest["revision/".Length..])) { await Error(c, 404, "RevisionNotFound", "Invalid rev id"); return; }
            c.Response.ContentType = "application/json";
            await c.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                id = repoId,
                sha = Commit,
                siblings = files.Select(f => IsLfs(f.Key)
                    ? (object)new { rfilename = f.Key, size = f.Value.Length, blobId = GitBlobId(Encoding.ASCII.GetBytes(Pointer(f.Value))), lfs = new { sha256 = Sha256(f.Value), size = f.Value.Length, pointerSize = Pointer(f.Value).Length } }
                    : new { rfilename = f.Key, size = f.Value.Length, blobId = GitBlobId(f.Value) }),
            }));
            return;
        }
        bool cached = kind == "cached";
        if (!cached && !rest.StartsWith("resolve/", StringComparison.Ordinal)) { c.Response.StatusCode = 404; return; }
        string[] parts = (cached ? rest : rest["resolve/".Length..]).Split('/', 2);
        if (!KnownRevision(parts[0])) { await Error(c, 404, "RevisionNotFound", "Invalid rev id"); return; }
        c.Response.Headers["X-Repo-Commit"] = Commit;
        if (parts.Length < 2 || !files.TryGetValue(parts[1], out var data)) { await Error(c, 404, "EntryNotFound", "Entry not found"); return; }
        if (IsLfs(parts[1]))
        {
            c.Response.StatusCode = 302;
            c.Response.Headers.Location = $"{CdnEndpoint}/blobs/{Sha256(data)}?signature=loopback";
            c.Response.Headers["X-Linked-Etag"] = $"\"{Sha256(data)}\"";
            c.Response.Headers["X-Linked-Size"] = data.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            c.Response.Headers.ETag = $"\"{GitBlobId(Encoding.ASCII.GetBytes(Pointer(data)))}\"";
            return;
        }
        if (!cached)
        {
            // A plain file is answered through a relative redirect, which huggingface_hub follows (an absolute one it reports).
            c.Response.StatusCode = 307;
            c.Response.Headers.Location = $"{ResolveCache}{key}/{Commit}/{parts[1]}";
            return;
        }
        c.Response.Headers.ETag = $"\"{GitBlobId(data)}\"";
        await Send(c, data, honourRange: true, stallAfter: null);
    }

    private async Task ServeCdn(HttpContext c)
    {
        Log(c);
        string sha = c.Request.Path.Value!["/blobs/".Length..];
        var data = _repos.Values.SelectMany(files => files.Values).FirstOrDefault(d => Sha256(d) == sha);
        if (data is null) { c.Response.StatusCode = 404; return; }
        await Send(c, data, honourRange: !IgnoreRange, StallAfter);
    }

    private static async Task Send(HttpContext c, byte[] data, bool honourRange, long? stallAfter)
    {
        long from = 0;
        if (honourRange && c.Request.Headers.Range.ToString() is { Length: > 0 } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = long.Parse(range["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            c.Response.StatusCode = 206;
            c.Response.Headers.ContentRange = $"bytes {from}-{data.Length - 1}/{data.Length}";
        }
        c.Response.ContentType = "application/octet-stream";
        c.Response.ContentLength = data.Length - from;
        if (HttpMethods.IsHead(c.Request.Method)) return;
        if (stallAfter is { } stall && stall > from)
        {
            await c.Response.Body.WriteAsync(data.AsMemory((int)from, (int)(stall - from)));
            await c.Response.Body.FlushAsync();
            await Task.Delay(Timeout.Infinite, c.RequestAborted).ContinueWith(_ => { });
            return;
        }
        await c.Response.Body.WriteAsync(data.AsMemory((int)from));
    }

    private const string ResolveCache = "/api/resolve-cache/";

    private static string Pointer(byte[] data) => $"version https://git-lfs.github.com/spec/v1\noid sha256:{Sha256(data)}\nsize {data.Length}\n";

    private static bool KnownRevision(string revision) => revision is "main" or Commit;

    private static async Task Error(HttpContext c, int status, string code, string message)
    {
        c.Response.StatusCode = status;
        c.Response.Headers["X-Error-Code"] = code;
        c.Response.Headers["X-Error-Message"] = message;
        c.Response.ContentType = "application/json";
        await c.Response.WriteAsync(JsonSerializer.Serialize(new { error = message }));
    }
}
