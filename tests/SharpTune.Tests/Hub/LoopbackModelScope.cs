using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharpTune.Tests.Hub;

/// <summary>
/// A stand-in for ModelScope on loopback, speaking its model protocol as the modelscope library expects it
/// (hub/api.py get_model_files, hub/file_download.py): <c>GET /api/v1/models/ORG/NAME/repo/files?Revision=R&amp;Recursive=True</c>
/// answers the envelope <c>{"Code":200,"Success":true,"Message":"success","Data":{"Files":[...]}}</c> whose entries
/// carry Name, Path, Size, Sha256, Type ("blob", or "tree" for a folder), IsLFS and Revision, <c>.gitattributes</c>
/// listed as ModelScope lists it; <c>GET /api/v1/models/ORG/NAME/repo?Revision=R&amp;FilePath=P</c> serves the bytes
/// and honours Range. An unknown model or revision gets 404 with <c>{"Code":10010205001,"Success":false,"Message"}</c>,
/// a wrong token 401. Every request is logged with its query, Range and Authorization.
/// Datasets (<see cref="AddDataset"/>) as modelscope's get_dataset_id_and_type, get_dataset_files and
/// get_dataset_file_url reach them: <c>GET /api/v1/datasets/ORG/NAME</c> answers the dataset's numeric Id,
/// <c>GET /api/v1/datasets/ID/repo/tree?Revision=R&amp;Root=/&amp;Recursive=True&amp;PageNumber=N&amp;PageSize=S</c> the
/// page of its entries (folders as "tree"), and <c>GET /api/v1/datasets/ORG/NAME/repo?Source=SDK&amp;Revision=R&amp;FilePath=P</c>
/// the bytes.
/// </summary>
public sealed class LoopbackModelScope : IAsyncDisposable
{
    public const string RepoId = "local-test-org/tiny";
    public const string Commit = "5a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
    public const string Revision = "master";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, Dictionary<string, byte[]>> _repos = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int Id, Dictionary<string, byte[]> Files)> _datasets = new(StringComparer.Ordinal);

    public string Endpoint { get; }

    /// <summary>"METHOD PATH?QUERY range=R auth=A" per request.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>When set, only this token may list or fetch (401 otherwise).</summary>
    public string? RequiredToken { get; set; }

    /// <summary>How many more times a file's bytes are served flipped (same length), as a damaged transfer or mirror would.</summary>
    public int CorruptServes { get; set; }

    public LoopbackModelScope(string modelDir)
    {
        AddRepo(RepoId, modelDir);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _app = builder.Build();
        _app.Run(Serve);
        _app.StartAsync().GetAwaiter().GetResult();
        Endpoint = _app.Urls.Single();
    }

    /// <summary>The files of <see cref="RepoId"/>, by path; a path with '/' is in a folder.</summary>
    public Dictionary<string, byte[]> Files => _repos[RepoId];

    /// <summary>Serves the files of <paramref name="dir"/> (not its subfolders) as the model <paramref name="repoId"/>.</summary>
    public void AddRepo(string repoId, string dir) =>
        _repos[repoId] = Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);

    /// <summary>Serves <paramref name="files"/> (path → bytes, '/' for folders) as the dataset <paramref name="repoId"/>.</summary>
    public void AddDataset(string repoId, Dictionary<string, byte[]> files) => _datasets[repoId] = (70000 + _datasets.Count, files);

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    private static readonly byte[] GitAttributes = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"u8.ToArray();

    private async Task Serve(HttpContext c)
    {
        Requests.Enqueue($"{c.Request.Method} {c.Request.Path}{c.Request.QueryString} range={c.Request.Headers.Range} auth={c.Request.Headers.Authorization}");
        string path = Uri.UnescapeDataString(c.Request.Path.Value!);
        if (path.StartsWith("/api/v1/datasets/", StringComparison.Ordinal))
        {
            await ServeDataset(c, path["/api/v1/datasets/".Length..]);
            return;
        }
        const string prefix = "/api/v1/models/";
        string? repoId = _repos.Keys.FirstOrDefault(id => path == $"{prefix}{id}/repo" || path == $"{prefix}{id}/repo/files");
        string revision = c.Request.Query["Revision"].ToString();
        if (repoId is null || revision != Revision)
        {
            await Envelope(c, 404, 10010205001, "The model does not exist or the revision is invalid", data: null);
            return;
        }
        if (RequiredToken is not null && c.Request.Headers.Authorization.ToString() != $"Bearer {RequiredToken}")
        {
            await Envelope(c, 401, 10010205401, "Unauthorized: no permission to access the model", data: null);
            return;
        }
        var files = new Dictionary<string, byte[]>(_repos[repoId], StringComparer.Ordinal) { [".gitattributes"] = GitAttributes };
        if (path.EndsWith("/files", StringComparison.Ordinal))
        {
            if (c.Request.Query["Recursive"].ToString() != "True") { await Envelope(c, 400, 400, "this stand-in answers recursive listings only", data: null); return; }
            var folders = files.Keys.Where(p => p.Contains('/')).Select(p => p[..p.LastIndexOf('/')]).Distinct();
            var entries = folders.Select(f => (object)Entry(f, "tree", null))
                .Concat(files.Select(f => (object)Entry(f.Key, "blob", f.Value)));
            await Envelope(c, 200, 200, "success", new { Files = entries, IsVisual = 0, LatestCommitter = new { Id = Commit } });
            return;
        }
        await ServeFile(c, files);
    }

    private async Task ServeDataset(HttpContext c, string rest)
    {
        if (_datasets.TryGetValue(rest, out var info))
        {
            await Envelope(c, 200, 200, "success", new { Id = info.Id, Type = 0, Name = rest[(rest.IndexOf('/') + 1)..], Namespace = rest[..rest.IndexOf('/')] });
            return;
        }
        string revision = c.Request.Query["Revision"].ToString();
        if (rest.EndsWith("/repo/tree", StringComparison.Ordinal))
        {
            var byId = _datasets.Values.FirstOrDefault(d => d.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) == rest[..^"/repo/tree".Length]);
            if (byId.Files is null || revision != Revision) { await Envelope(c, 404, 10010205001, "The dataset does not exist or the revision is invalid", data: null); return; }
            if (c.Request.Query["Recursive"].ToString() != "True" || c.Request.Query["Root"].ToString() != "/")
            {
                await Envelope(c, 400, 400, "this stand-in answers recursive listings from the root only", data: null);
                return;
            }
            int page = int.Parse(c.Request.Query["PageNumber"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
            int size = int.Parse(c.Request.Query["PageSize"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
            var folders = byId.Files.Keys.Where(p => p.Contains('/')).Select(p => p[..p.LastIndexOf('/')]).Distinct();
            var entries = folders.Select(f => (object)Entry(f, "tree", null)).Concat(byId.Files.Select(f => (object)Entry(f.Key, "blob", f.Value)));
            await Envelope(c, 200, 200, "success", new { Files = entries.Skip((page - 1) * size).Take(size).ToList() });
            return;
        }
        if (rest.EndsWith("/repo", StringComparison.Ordinal) && _datasets.TryGetValue(rest[..^"/repo".Length], out var dataset) && revision == Revision)
        {
            await ServeFile(c, dataset.Files);
            return;
        }
        await Envelope(c, 404, 10010205001, "The dataset does not exist or the revision is invalid", data: null);
    }

    private async Task ServeFile(HttpContext c, Dictionary<string, byte[]> files)
    {
        if (!files.TryGetValue(c.Request.Query["FilePath"].ToString(), out var data))
        {
            await Envelope(c, 404, 10010205002, "The file does not exist", data: null);
            return;
        }
        if (CorruptServes > 0)
        {
            CorruptServes--;
            data = data.Select(b => (byte)~b).ToArray();
        }
        long from = 0;
        if (c.Request.Headers.Range.ToString() is { Length: > 0 } range && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            from = long.Parse(range["bytes=".Length..range.IndexOf('-')], System.Globalization.CultureInfo.InvariantCulture);
            c.Response.StatusCode = 206;
            c.Response.Headers.ContentRange = $"bytes {from}-{data.Length - 1}/{data.Length}";
        }
        c.Response.ContentType = "application/octet-stream";
        c.Response.ContentLength = data.Length - from;
        await c.Response.Body.WriteAsync(data.AsMemory((int)from));
    }

    private static object Entry(string path, string type, byte[]? data) => new
    {
        Name = path[(path.LastIndexOf('/') + 1)..],
        Path = path,
        Size = data?.Length ?? 0,
        Sha256 = data is null ? "" : LoopbackHub.Sha256(data),
        Type = type,
        IsLFS = data is not null && LoopbackHub.IsLfs(path),
        Revision = Commit,
        Mode = type == "tree" ? "40000" : "100644",
        CommitMessage = "tiny model",
        CommittedDate = 1767225600,
    };

    private static async Task Envelope(HttpContext c, int status, long code, string message, object? data)
    {
        c.Response.StatusCode = status;
        c.Response.ContentType = "application/json";
        await c.Response.WriteAsync(JsonSerializer.Serialize(new { Code = code, Data = data, Message = message, RequestId = Guid.NewGuid().ToString("N"), Success = status == 200 }));
    }
}
