using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace SharpTune.Hub;

/// <summary>A failure talking to the Hub or writing its files, said in one line that names the repository, revision or file.</summary>
public sealed class HubException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One file of a repository at a commit, as the Hub lists it (<c>siblings</c> with <c>blobs=true</c>).</summary>
/// <param name="Sha256">The LFS object's sha256 for a file stored in LFS; null for a plain git file.</param>
public sealed record HubFile(string Path, long Size, string BlobId, string? Sha256);

/// <summary>A repository at a commit: the commit hash and its files.</summary>
public sealed record HubRepoInfo(string Commit, IReadOnlyList<HubFile> Files);

/// <summary>What a <c>resolve</c> URL's HEAD says about a file (huggingface_hub's HfFileMetadata).</summary>
/// <param name="Location">Where to GET the bytes: the CDN a redirect names, or the resolve URL itself.</param>
public sealed record HubFileMetadata(string Commit, string Etag, long Size, Uri Location);

/// <summary>
/// The Hugging Face Hub's HTTP protocol, as huggingface_hub speaks it: <c>/api/{models|datasets}/ID/revision/REV</c>
/// for a commit and its file list, a HEAD on <c>/ID/resolve/COMMIT/FILE</c> (no compression, relative redirects
/// followed, absolute ones reported) for a file's etag, size and location, and a GET of that location, resumed
/// with <c>Range</c>. The token is sent to the Hub's own host only: a redirect to another host (a CDN with a signed
/// URL) gets no Authorization header. Errors become <see cref="HubException"/>s with the Hub's reason.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int MaxRelativeRedirects = 10;
    private readonly HttpClient _http;
    private readonly HubSettings _settings;
    private readonly Uri _endpoint;

    public HubClient(HubSettings settings)
    {
        _settings = settings;
        if (!Uri.TryCreate(settings.Endpoint + "/", UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            throw new HubException($"{settings.EndpointVariable} '{settings.Endpoint}' is not an http(s) URL");
        _endpoint = endpoint;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("sharptune/1.0");
    }

    public void Dispose() => _http.Dispose();

    /// <summary>The commit that <paramref name="revision"/> names and that commit's files (with LFS sha256s).</summary>
    public async Task<HubRepoInfo> RepoInfoAsync(string repoType, string repoId, string revision, CancellationToken cancel)
    {
        var url = new Uri(_endpoint, $"api/{repoType}s/{repoId}/revision/{Uri.EscapeDataString(revision)}?blobs=true");
        using var request = HubRequest(HttpMethod.Get, url);
        using var response = await Send(request, cancel).ConfigureAwait(false);
        ThrowForStatus(response, repoId, revision, file: null);
        string body = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
        RefuseHtml(response, body, url);
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            string commit = root.GetProperty("sha").GetString() ?? "";
            if (!HubCache.IsCommit(commit)) throw new HubException($"{url}: 'sha' is not a commit hash");
            var files = new List<HubFile>();
            foreach (var sibling in root.GetProperty("siblings").EnumerateArray())
            {
                string path = sibling.GetProperty("rfilename").GetString() ?? "";
                string? sha256 = sibling.TryGetProperty("lfs", out var lfs) && lfs.ValueKind == JsonValueKind.Object ? lfs.GetProperty("sha256").GetString() : null;
                long size = sibling.TryGetProperty("size", out var s) ? s.GetInt64() : -1;
                string blobId = sibling.TryGetProperty("blobId", out var b) ? b.GetString() ?? "" : "";
                files.Add(new HubFile(path, size, blobId, sha256));
            }
            return new HubRepoInfo(commit, files);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new HubException($"{url} did not return the Hub's repository JSON ({e.Message.ReplaceLineEndings(" ")}); is HF_ENDPOINT a Hugging Face Hub or mirror?", e);
        }
    }

    /// <summary>The <c>resolve</c> URL of a file at a revision.</summary>
    public Uri ResolveUrl(string repoType, string repoId, string revision, string file) =>
        new(_endpoint, $"{(repoType == "model" ? "" : repoType + "s/")}{repoId}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>HEAD of a file's resolve URL: X-Repo-Commit, X-Linked-Etag or ETag, X-Linked-Size or Content-Length, and the redirect.</summary>
    public async Task<HubFileMetadata> FileMetadataAsync(string repoType, string repoId, string commit, string file, CancellationToken cancel)
    {
        var url = ResolveUrl(repoType, repoId, commit, file);
        for (int redirects = 0; ; redirects++)
        {
            using var request = HubRequest(HttpMethod.Head, url);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            using var response = await Send(request, cancel).ConfigureAwait(false);
            ThrowForStatus(response, repoId, commit, file);
            var location = response.Headers.Location;
            bool isRedirect = (int)response.StatusCode is >= 300 and < 400;
            if (isRedirect && location is not null && !location.IsAbsoluteUri && redirects < MaxRelativeRedirects)
            {
                url = new Uri(url, location);
                continue;
            }
            string? Header(string name) => response.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;
            string? commitHeader = Header("X-Repo-Commit");
            string? etag = NormalizeEtag(Header("X-Linked-Etag") ?? Header("ETag"));
            string? sizeText = Header("X-Linked-Size") ?? (isRedirect ? null : response.Content.Headers.ContentLength?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (commitHeader is null && IsHtml(response))
                throw new HubException($"{url} returned an HTML page instead of the Hub's answer: is HF_ENDPOINT ('{_settings.Endpoint}') a Hugging Face Hub or mirror?");
            if (commitHeader is null)
                throw new HubException($"{url} answered without X-Repo-Commit: it does not look like a Hugging Face Hub (check HF_ENDPOINT, proxy and firewall)");
            if (etag is null) throw new HubException($"{url} answered without an ETag; the file cannot be checked, so it is not downloaded");
            if (!long.TryParse(sizeText, out long size) || size < 0) throw new HubException($"{url} answered without a file size (X-Linked-Size or Content-Length)");
            return new HubFileMetadata(commitHeader, etag, size, isRedirect && location is not null ? new Uri(url, location) : url);
        }
    }

    /// <summary>
    /// GETs <paramref name="location"/> into <paramref name="target"/>, asking for the bytes from the stream's
    /// current length on (<c>Range</c>); a server that answers 200 instead of 206 ignored the range, so the stream is
    /// emptied and the download starts over. Each chunk is written through before the next is read, so a killed
    /// process leaves every byte it received; <paramref name="onBytes"/> hears of each chunk (negative: bytes dropped).
    /// </summary>
    public async Task DownloadAsync(Uri location, FileStream target, Action<long> onBytes, CancellationToken cancel)
    {
        long resume = target.Length;
        using var request = new HttpRequestMessage(HttpMethod.Get, location);
        if (SameHost(location)) AddToken(request);
        if (resume > 0) request.Headers.Range = new RangeHeaderValue(resume, null);
        using var response = await Send(request, cancel, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            throw new HubException($"{location} refused the range from byte {resume}: the partial file is longer than the file");
        ThrowForStatus(response, repoId: null, revision: null, file: location.AbsolutePath);
        if (response.StatusCode != HttpStatusCode.PartialContent && resume > 0)
        {
            onBytes(-resume);
            target.SetLength(0);
        }
        target.Seek(0, SeekOrigin.End);
        await using var body = await response.Content.ReadAsStreamAsync(cancel).ConfigureAwait(false);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await body.ReadAsync(buffer, cancel).ConfigureAwait(false)) > 0)
        {
            await target.WriteAsync(buffer.AsMemory(0, read), cancel).ConfigureAwait(false);
            await target.FlushAsync(cancel).ConfigureAwait(false);
            onBytes(read);
        }
    }

    internal HttpRequestMessage HubRequest(HttpMethod method, Uri url)
    {
        var request = new HttpRequestMessage(method, url);
        AddToken(request);
        return request;
    }

    private void AddToken(HttpRequestMessage request)
    {
        if (_settings.Token is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private bool SameHost(Uri url) => string.Equals(url.Authority, _endpoint.Authority, StringComparison.OrdinalIgnoreCase);

    internal async Task<HttpResponseMessage> Send(HttpRequestMessage request, CancellationToken cancel,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await _http.SendAsync(request, completion, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new HubUnreachableException($"cannot reach {request.RequestUri!.GetLeftPart(UriPartial.Authority)} ({e.Message.ReplaceLineEndings(" ")}); check the network or {_settings.EndpointVariable}, or set HF_HUB_OFFLINE=1 to use the cache only", e);
        }
    }

    /// <summary>
    /// The Hub's errors as huggingface_hub's hf_raise_for_status reads them: X-Error-Code (RepoNotFound,
    /// RevisionNotFound, EntryNotFound, GatedRepo) first, then the status.
    /// </summary>
    private void ThrowForStatus(HttpResponseMessage response, string? repoId, string? revision, string? file)
    {
        int status = (int)response.StatusCode;
        if (status < 400) return;
        string? code = response.Headers.TryGetValues("X-Error-Code", out var codes) ? codes.FirstOrDefault() : null;
        string? hubMessage = response.Headers.TryGetValues("X-Error-Message", out var messages) ? messages.FirstOrDefault() : null;
        string repo = $"'{repoId}'";
        string at = $"{response.RequestMessage!.RequestUri}";
        string message = repoId is null ? $"HTTP {status} from {at}" : (code, status) switch
        {
            ("GatedRepo", _) => $"{repo} is a gated repository: accept its licence at {_settings.Endpoint}/{repoId} and set HF_TOKEN to a token of that account",
            ("RepoNotFound", _) or (_, 401) => $"repository {repo} was not found at {_settings.Endpoint}, or it is private or gated: check the id, or set HF_TOKEN to a token with access{(_settings.Token is null ? "" : " (the token sent was refused)")}",
            ("RevisionNotFound", _) => $"revision '{revision}' of {repo} was not found at {_settings.Endpoint}",
            ("EntryNotFound", _) => $"file '{file}' is not in {repo} at revision '{revision}'",
            (_, 403) => $"access to {repo} was refused (403 at {at}): if it is gated, accept its licence at {_settings.Endpoint}/{repoId} and set HF_TOKEN",
            (_, 404) => $"not found (404): {at} (repository {repo}, revision '{revision}'{(file is null ? "" : $", file '{file}'")})",
            _ => $"HTTP {status} from {at}",
        };
        if (hubMessage is { Length: > 0 } && code is not null) message += $" (the Hub says: {hubMessage.ReplaceLineEndings(" ")})";
        if (IsHtml(response) && code is null)
            message += "; the answer was an HTML page: is HF_ENDPOINT a Hugging Face Hub or mirror?";
        throw new HubException(message);
    }

    /// <summary>A mirror or captive portal that answers with a web page instead of JSON or file bytes.</summary>
    private static void RefuseHtml(HttpResponseMessage response, string? body, Uri url)
    {
        if (IsHtml(response) || body?.TrimStart().StartsWith('<') == true)
            throw new HubException($"{url} returned an HTML page instead of the Hub's answer: is HF_ENDPOINT ('{url.GetLeftPart(UriPartial.Authority)}') a Hugging Face Hub or mirror?");
    }

    internal static bool IsHtml(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType is "text/html" or "application/xhtml+xml";

    /// <summary>An ETag without the weak marker and quotes, as huggingface_hub's _normalize_etag: the blob's name in the cache.</summary>
    public static string? NormalizeEtag(string? etag) =>
        etag is null ? null : (etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag).Trim('"');
}

/// <summary>The Hub could not be reached at all (no connection); a cached snapshot may still serve.</summary>
public sealed class HubUnreachableException(string message, Exception inner) : Exception(message, inner);
