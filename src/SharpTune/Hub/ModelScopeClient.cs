using System.Net;
using System.Text.Json;

namespace SharpTune.Hub;

/// <summary>
/// ModelScope's HTTP protocol for models, as the modelscope library (hub/api.py get_model_files, hub/file_download.py)
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

    /// <summary>The files (not folders) of <paramref name="repoId"/> at <paramref name="revision"/>, with sizes and sha256s.</summary>
    public async Task<IReadOnlyList<HubFile>> ListFilesAsync(string repoId, string revision, CancellationToken cancel)
    {
        var url = new Uri($"{settings.Endpoint}/api/v1/models/{repoId}/repo/files?Revision={Uri.EscapeDataString(revision)}&Recursive=True");
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
        using (doc)
        {
            var root = doc.RootElement;
            string? said = root.ValueKind == JsonValueKind.Object && (root.TryGetProperty("Message", out var m) || root.TryGetProperty("message", out m)) && m.ValueKind == JsonValueKind.String
                ? m.GetString() : null;
            string saying = said is { Length: > 0 } ? $" (ModelScope says: {said.ReplaceLineEndings(" ")})" : "";
            switch (response.StatusCode)
            {
                case HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden:
                    throw new HubException($"access to '{repoId}' at {settings.Endpoint} was refused (HTTP {(int)response.StatusCode}): if it is private, set MODELSCOPE_API_TOKEN to a token with access{(settings.Token is null ? "" : " (the token sent was refused)")}{saying}");
                case HttpStatusCode.NotFound:
                    throw new HubException($"model '{repoId}' or its revision '{revision}' was not found at {settings.Endpoint}{saying}");
            }
            if ((int)response.StatusCode >= 400 || root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("Code", out var code) || code.ValueKind != JsonValueKind.Number || code.GetInt64() != 200)
                throw new HubException($"listing the files of '{repoId}' at revision '{revision}' failed (HTTP {(int)response.StatusCode} from {url}){saying}");
            try
            {
                var files = new List<HubFile>();
                var listed = root.GetProperty("Data").GetProperty("Files");
                if (listed.ValueKind == JsonValueKind.Null) return files;
                foreach (var entry in listed.EnumerateArray())
                {
                    // Folders come listed too; and modelscope leaves out git's own files.
                    if (entry.GetProperty("Type").GetString() == "tree") continue;
                    string path = entry.GetProperty("Path").GetString() ?? "";
                    if (path is ".gitignore" or ".gitattributes") continue;
                    string? sha256 = entry.TryGetProperty("Sha256", out var sha) && sha.ValueKind == JsonValueKind.String && sha.GetString() is { Length: > 0 } s ? s : null;
                    files.Add(new HubFile(path, entry.GetProperty("Size").GetInt64(), BlobId: "", sha256));
                }
                return files;
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new HubException($"{url} did not return ModelScope's file list ({e.Message.ReplaceLineEndings(" ")}); is MODELSCOPE_DOMAIN a ModelScope hub?", e);
            }
        }
    }

    /// <summary>Where a file's bytes are: modelscope's get_file_download_url.</summary>
    public Uri FileUrl(string repoId, string revision, string path) =>
        new($"{settings.Endpoint}/api/v1/models/{repoId}/repo?Revision={Uri.EscapeDataString(revision)}&FilePath={Uri.EscapeDataString(path)}");
}
