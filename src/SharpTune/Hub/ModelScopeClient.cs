using System.Net;
using System.Text.Json;

namespace SharpTune.Hub;

/// <summary>
/// ModelScope's HTTP protocol for models (and datasets, see <see cref="ListFilesAsync"/>), as the modelscope library (hub/api.py get_model_files, hub/file_download.py)
/// speaks it: <c>GET /api/v1/models/ORG/NAME/repo/files?Revision=REV&amp;Recursive=True</c> answers
/// <c>{"Code":200,"Success":true,"Data":{"Files":[{"Path","Name","Size","Sha256","Type":"blob"|"tree",...}]}}</c>,
/// and a file's bytes come from <c>GET /api/v1/models/ORG/NAME/repo?Revision=REV&amp;FilePath=PATH</c>, resumed with
/// <c>Range</c>. The token (<c>MODELSCOPE_API_TOKEN</c>) goes as a Bearer header, as modelscope sends it. The
/// transfer itself is <see cref="HubClient"/>'s, which this wraps.
/// </summary>
public sealed class ModelScopeClient(HubSettings settings) : IDisposable
{
    private readonly HubClient _http = new(settings);

    /// <summary>The client that moves the bytes (Range resume, token only to the endpoint's host).</summary>
    public HubClient Transfer => _http;

    public void Dispose() => _http.Dispose();

    /// <summary>modelscope's page size when it lists a dataset (snapshot_download.fetch_repo_files).</summary>
    private const int DatasetPageSize = 150;

    /// <summary>
    /// The files (not folders) of the <paramref name="repoType"/> ("model" or "dataset") <paramref name="repoId"/> at
    /// <paramref name="revision"/>, with sizes and sha256s. A dataset is listed as modelscope's get_dataset_files
    /// lists it: its numeric id from <c>GET /api/v1/datasets/ORG/NAME</c>, then
    /// <c>GET /api/v1/datasets/ID/repo/tree?Revision=REV&amp;Root=/&amp;Recursive=True&amp;PageNumber=N&amp;PageSize=150</c>
    /// page after page until one comes back short.
    /// </summary>
    public async Task<IReadOnlyList<HubFile>> ListFilesAsync(string repoType, string repoId, string revision, CancellationToken cancel)
    {
        var files = new List<HubFile>();
        if (repoType != "dataset")
        {
            var url = new Uri($"{settings.Endpoint}/api/v1/models/{repoId}/repo/files?Revision={Uri.EscapeDataString(revision)}&Recursive=True");
            using var listing = await GetData(url, repoType, repoId, revision, cancel).ConfigureAwait(false);
            ReadFiles(listing.RootElement.GetProperty("Data"), url, files);
            return files;
        }
        var infoUrl = new Uri($"{settings.Endpoint}/api/v1/datasets/{repoId}");
        string datasetId;
        using (var info = await GetData(infoUrl, repoType, repoId, revision, cancel).ConfigureAwait(false))
        {
            datasetId = info.RootElement.GetProperty("Data") is { ValueKind: JsonValueKind.Object } data && data.TryGetProperty("Id", out var id)
                && id.ValueKind is JsonValueKind.Number or JsonValueKind.String
                ? id.ValueKind == JsonValueKind.String ? id.GetString()! : id.GetRawText()
                : throw new HubException($"{infoUrl} did not return the dataset's Id; is MODELSCOPE_DOMAIN a ModelScope hub?");
        }
        for (int page = 1; ; page++)
        {
            var url = new Uri($"{settings.Endpoint}/api/v1/datasets/{Uri.EscapeDataString(datasetId)}/repo/tree?Revision={Uri.EscapeDataString(revision)}"
                + $"&Root=%2F&Recursive=True&PageNumber={page}&PageSize={DatasetPageSize}");
            using var listing = await GetData(url, repoType, repoId, revision, cancel).ConfigureAwait(false);
            if (ReadFiles(listing.RootElement.GetProperty("Data"), url, files) < DatasetPageSize) return files;
        }
    }

    /// <summary>The parsed answer of <paramref name="url"/>, once its envelope says Code 200 (the caller reads its Data).</summary>
    private async Task<JsonDocument> GetData(Uri url, string repoType, string repoId, string revision, CancellationToken cancel)
    {
        using var request = _http.HubRequest(HttpMethod.Get, url);
        using var response = await _http.Send(request, cancel).ConfigureAwait(false);
        string body = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
        if (HubClient.IsHtml(response) || body.TrimStart().StartsWith('<'))
            throw new HubException($"{url} returned an HTML page (HTTP {(int)response.StatusCode}) instead of ModelScope's answer: is MODELSCOPE_DOMAIN ('{settings.Endpoint}') a ModelScope hub?");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new HubException($"{url} (HTTP {(int)response.StatusCode}) did not return JSON ({e.Message.ReplaceLineEndings(" ")}); is MODELSCOPE_DOMAIN a ModelScope hub?", e);
        }
        var root = doc.RootElement;
        string? said = root.ValueKind == JsonValueKind.Object && (root.TryGetProperty("Message", out var m) || root.TryGetProperty("message", out m)) && m.ValueKind == JsonValueKind.String
            ? m.GetString() : null;
        string saying = said is { Length: > 0 } ? $" (ModelScope says: {said.ReplaceLineEndings(" ")})" : "";
        bool ok = (int)response.StatusCode < 400 && root.ValueKind == JsonValueKind.Object && root.TryGetProperty("Code", out var code)
            && code.ValueKind == JsonValueKind.Number && code.GetInt64() == 200 && root.TryGetProperty("Data", out _);
        if (ok) return doc;
        doc.Dispose();
        throw response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                new HubException($"access to '{repoId}' at {settings.Endpoint} was refused (HTTP {(int)response.StatusCode}): if it is private, set MODELSCOPE_API_TOKEN to a token with access{(settings.Token is null ? "" : " (the token sent was refused)")}{saying}"),
            HttpStatusCode.NotFound => new HubException($"{repoType} '{repoId}' or its revision '{revision}' was not found at {settings.Endpoint}{saying}"),
            _ => new HubException($"listing the files of '{repoId}' at revision '{revision}' failed (HTTP {(int)response.StatusCode} from {url}){saying}"),
        };
    }

    /// <summary>Adds the files of a listing's Data to <paramref name="files"/>; returns how many entries (folders too) it held.</summary>
    private static int ReadFiles(JsonElement data, Uri url, List<HubFile> files)
    {
        try
        {
            var listed = data.GetProperty("Files");
            if (listed.ValueKind == JsonValueKind.Null) return 0;
            int entries = 0;
            foreach (var entry in listed.EnumerateArray())
            {
                entries++;
                // Folders come listed too; and modelscope leaves out git's own files.
                if (entry.GetProperty("Type").GetString() == "tree") continue;
                string path = entry.GetProperty("Path").GetString() ?? "";
                if (path is ".gitignore" or ".gitattributes") continue;
                string? sha256 = entry.TryGetProperty("Sha256", out var sha) && sha.ValueKind == JsonValueKind.String && sha.GetString() is { Length: > 0 } s ? s : null;
                files.Add(new HubFile(path, entry.GetProperty("Size").GetInt64(), BlobId: "", sha256));
            }
            return entries;
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new HubException($"{url} did not return ModelScope's file list ({e.Message.ReplaceLineEndings(" ")}); is MODELSCOPE_DOMAIN a ModelScope hub?", e);
        }
    }

    /// <summary>
    /// Where a file's bytes are: modelscope's get_file_download_url for a model, its get_dataset_file_url for a
    /// dataset (<c>/api/v1/datasets/ORG/NAME/repo?Source=SDK&amp;Revision=REV&amp;FilePath=PATH</c>).
    /// </summary>
    public Uri FileUrl(string repoType, string repoId, string revision, string path) => repoType == "dataset"
        ? new($"{settings.Endpoint}/api/v1/datasets/{repoId}/repo?Source=SDK&Revision={Uri.EscapeDataString(revision)}&FilePath={Uri.EscapeDataString(path)}")
        : new($"{settings.Endpoint}/api/v1/models/{repoId}/repo?Revision={Uri.EscapeDataString(revision)}&FilePath={Uri.EscapeDataString(path)}");
}
