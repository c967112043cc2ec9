using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Board;

namespace SharpTune.Tests.Board;

/// <summary>The board over real HTTP on loopback: confinement to its roots, CSRF, origin and host rules, body limit.</summary>
public sealed class BoardSecurityTests(BoardSite site) : IClassFixture<BoardSite>
{
    [Fact]
    public async Task APathOutsideTheRoots_IsRefused_AndOneInsideIsServed()
    {
        using var client = await site.ClientAsync();
        var models = await client.GetJsonAsync("/api/models");
        Assert.Equal(["models/tiny"], models["models"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal("qwen", (await client.GetJsonAsync("/api/template-check?model=models/tiny&template=auto"))["template"]!.GetValue<string>());

        // A folder that is a model, but outside the board's folders; the same reached by .. and by a link inside.
        string outside = Path.Combine(Path.GetDirectoryName(site.Root)!, Path.GetFileName(site.Root) + "-outside");
        Directory.CreateDirectory(outside);
        try
        {
            File.Copy(Path.Combine(site.Root, "models", "tiny", "config.json"), Path.Combine(outside, "config.json"));
            File.CreateSymbolicLink(Path.Combine(site.Root, "models", "escape"), outside);
            foreach (string path in new[] { outside, $"models/../../{Path.GetFileName(outside)}", "models/escape", "/etc", "data" })
            {
                var (status, error) = await BoardClient.ErrorOf(await client.Http.GetAsync($"/api/template-check?model={Uri.EscapeDataString(path)}&template=auto"));
                Assert.Equal(HttpStatusCode.Forbidden, status);
                Assert.Contains("is outside the folders this board may use", error);
            }
        }
        finally
        {
            File.Delete(Path.Combine(site.Root, "models", "escape"));
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public void TheRootsHelper_RefusesEscapes_ByDotDotAbsolutePathAndLink()
    {
        var roots = site.Server.Roots;
        Assert.Equal(Path.Combine(roots.Root, "data", "identity.json"), roots.Confine("data/identity.json", BoardRoot.Data));
        Assert.Equal(403, Assert.Throws<BoardException>(() => roots.Confine("data/identity.json", BoardRoot.Saves)).Status);
        Assert.Equal(403, Assert.Throws<BoardException>(() => roots.Confine("saves/../../x", BoardRoot.Saves)).Status);
        Assert.Equal(403, Assert.Throws<BoardException>(() => roots.Confine("/tmp", BoardRoot.Saves, BoardRoot.Data, BoardRoot.Models)).Status);
        Assert.Equal(400, Assert.Throws<BoardException>(() => roots.Confine("saves/\0", BoardRoot.Saves)).Status);
    }

    [Fact]
    public async Task AStateChangingRequest_NeedsTheCsrfHeader_AndJson()
    {
        using var client = await site.ClientAsync();
        Assert.NotNull(client.Csrf);
        var bare = new HttpRequestMessage(HttpMethod.Post, "/api/login") { Content = new StringContent("""{"token":"x"}""", Encoding.UTF8, "application/json") };
        var (status, error) = await BoardClient.ErrorOf(await client.Http.SendAsync(bare));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("X-CSRF-Token", error);

        var form = new HttpRequestMessage(HttpMethod.Post, "/api/login") { Content = new StringContent("token=x", Encoding.UTF8, "application/x-www-form-urlencoded") };
        form.Headers.Add(BoardAuth.CsrfHeader, client.Csrf);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await BoardClient.ErrorOf(await client.Http.SendAsync(form))).Status);
    }

    [Fact]
    public async Task AnotherOrigin_OrAnotherHostName_IsRefused()
    {
        using var client = await site.ClientAsync();
        var fromElsewhere = new HttpRequestMessage(HttpMethod.Get, "/api/models");
        fromElsewhere.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await BoardClient.ErrorOf(await client.Http.SendAsync(fromElsewhere))).Status);

        var rebound = new HttpRequestMessage(HttpMethod.Get, "/api/models");
        rebound.Headers.Host = "evil.example";
        var (status, error) = await BoardClient.ErrorOf(await client.Http.SendAsync(rebound));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("does not answer for the host name", error);

        var sameOrigin = new HttpRequestMessage(HttpMethod.Get, "/api/models");
        sameOrigin.Headers.Add("Origin", site.Url.GetLeftPart(UriPartial.Authority));
        Assert.True((await client.Http.SendAsync(sameOrigin)).IsSuccessStatusCode);
    }

    [Fact]
    public async Task ABodyOverTheLimit_IsRefusedWith413()
    {
        using var client = await site.ClientAsync();
        var huge = new JsonObject { ["token"] = new string('x', (int)site.Server.Options.MaxRequestBodyBytes + 10) };
        var (status, error) = await BoardClient.ErrorOf(await client.PostAsync("/api/login", huge));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("larger than the board's limit", error);
    }

    [Fact]
    public async Task ErrorsAreJson_WithTheirStatus()
    {
        using var client = await site.ClientAsync();
        var (status, error) = await BoardClient.ErrorOf(await client.Http.GetAsync("/api/nope"));
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("/api/nope", error);
        Assert.Equal(HttpStatusCode.BadRequest, (await BoardClient.ErrorOf(await client.Http.GetAsync("/api/template-check?template=auto"))).Status);
    }

    [Fact]
    public async Task NotOnLoopback_WithoutAToken_TheBoardDoesNotStart()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => BoardServer.StartAsync(new BoardOptions { Host = "0.0.0.0", Port = 0, Root = site.Root }));
        Assert.Contains("--token", e.Message);
    }
}

/// <summary>A board with a token: nothing but the login page answers until the token is given.</summary>
public sealed class BoardTokenTests(TokenBoardSite site) : IClassFixture<TokenBoardSite>
{
    [Fact]
    public async Task WithoutTheToken_ApiIs401_AndThePageRedirectsToLogin()
    {
        using var stranger = new BoardClient(site.Url);
        (await stranger.Http.GetAsync("/login.html")).EnsureSuccessStatusCode();
        var page = await stranger.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        Assert.Equal("/login.html", page.Headers.Location!.OriginalString);
        var (status, _) = await BoardClient.ErrorOf(await stranger.Http.GetAsync("/api/models"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        var (wrong, error) = await BoardClient.ErrorOf(await stranger.PostAsync("/api/login", new JsonObject { ["token"] = "not-the-token" }));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong);
        Assert.Equal("wrong token", error);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.Http.GetAsync("/api/models")).StatusCode);
    }

    [Fact]
    public async Task WithTheToken_TheSessionCookieOpensTheBoard()
    {
        using var client = await site.ClientAsync();
        Assert.Equal(["models/tiny"], (await client.GetJsonAsync("/api/models"))["models"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.OK, (await client.Http.GetAsync("/")).StatusCode);
    }
}
