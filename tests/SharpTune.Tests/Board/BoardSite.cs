using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using SharpTune.Board;
using SharpTune.Model;

namespace SharpTune.Tests.Board;

/// <summary>
/// A running board for a test class: its root holds models/tiny (the `init-model --preset tiny` model), data/ (the
/// bundled identity data and its dataset_info.json) and saves/; it listens on a free loopback port and starts runs
/// with the CLI built beside the tests. <see cref="ClientAsync"/> gives an HTTP client that behaves as the page does
/// (cookies, CSRF header); <see cref="OpenPageAsync"/> a real Chromium page on it.
/// </summary>
public class BoardSite : IAsyncLifetime
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sharptune-board-").FullName;
    public BoardServer Server { get; private set; } = null!;
    public Uri Url => Server.Address;

    /// <summary>The token the board is started with, or null for none.</summary>
    protected virtual string? Token => null;

    public static SharpTuneCommand Cli => new(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli"), []);

    public async Task InitializeAsync()
    {
        ModelInitializer.Create(ModelPreset.Get("tiny"), TestPaths.Fixtures("tokenizers", "qwen2.5-instruct"), Path.Combine(Root, "models", "tiny"), seed: 1);
        string data = Directory.CreateDirectory(Path.Combine(Root, "data")).FullName;
        foreach (string file in new[] { "identity.json", "dataset_info.json" })
            File.Copy(Path.Combine(TestPaths.RepoRoot, "data", file), Path.Combine(data, file));
        Directory.CreateDirectory(Path.Combine(Root, "saves"));
        Server = await BoardServer.StartAsync(new BoardOptions
        {
            Host = "127.0.0.1",
            Port = 0,
            Root = Root,
            Token = Token,
            Command = Cli,
            HubCache = Directory.CreateDirectory(Path.Combine(Root, "hub")).FullName,
        });
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>A client holding the board's cookies that sends the CSRF header as the page does (signed in when a token is set).</summary>
    public async Task<BoardClient> ClientAsync()
    {
        var client = new BoardClient(Url);
        (await client.Http.GetAsync("/")).Dispose();
        if (Token is { } token) (await client.PostAsync("/api/login", new JsonObject { ["token"] = token })).EnsureSuccessStatusCode();
        return client;
    }

    /// <summary>A Chromium page with the board loaded and its tabs initialised.</summary>
    public async Task<ChromiumPage> OpenPageAsync(string fragment = "")
    {
        var page = await ChromiumPage.OpenAsync();
        try
        {
            await page.GotoAsync(new Uri(Url, "/" + fragment).AbsoluteUri);
            await page.WaitForAsync("document.body.dataset.ready === 'true' || document.querySelector('main > .error')", TimeSpan.FromSeconds(30));
            var failure = await page.EvaluateAsync("document.querySelector('main > .error')?.textContent ?? null");
            Assert.True(failure is null, $"the page failed to start: {failure}");
            return page;
        }
        catch
        {
            await page.DisposeAsync();
            throw;
        }
    }
}

/// <summary>An HTTP client for the board with its own cookie jar, sending the CSRF header as the page's script does.</summary>
public sealed class BoardClient : IDisposable
{
    public CookieContainer Cookies { get; } = new();
    public HttpClient Http { get; }
    private readonly Uri _url;

    public BoardClient(Uri url)
    {
        _url = url;
        Http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
    }

    public string? Csrf => Cookies.GetCookies(_url)[BoardAuth.CsrfCookie]?.Value;

    public Task<HttpResponseMessage> PostAsync(string path, JsonNode body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        if (Csrf is { } csrf) request.Headers.Add(BoardAuth.CsrfHeader, csrf);
        return Http.SendAsync(request);
    }

    /// <summary>GET a JSON reply, asserting success.</summary>
    public async Task<JsonObject> GetJsonAsync(string path)
    {
        using var reply = await Http.GetAsync(path);
        string text = await reply.Content.ReadAsStringAsync();
        Assert.True(reply.IsSuccessStatusCode, $"GET {path}: {(int)reply.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>POST JSON, asserting success.</summary>
    public async Task<JsonObject> PostJsonAsync(string path, JsonNode body)
    {
        using var reply = await PostAsync(path, body);
        string text = await reply.Content.ReadAsStringAsync();
        Assert.True(reply.IsSuccessStatusCode, $"POST {path}: {(int)reply.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>The status and the {error} message of a refused request.</summary>
    public static async Task<(HttpStatusCode Status, string Error)> ErrorOf(HttpResponseMessage reply)
    {
        string text = await reply.Content.ReadAsStringAsync();
        Assert.False(reply.IsSuccessStatusCode, $"expected a refusal, got {(int)reply.StatusCode}: {text}");
        return (reply.StatusCode, JsonNode.Parse(text)!["error"]!.GetValue<string>());
    }

    public void Dispose() => Http.Dispose();
}

/// <summary>A board started with a token.</summary>
public sealed class TokenBoardSite : BoardSite
{
    public const string TheToken = "s3cret-board-token";
    protected override string? Token => TheToken;
}
