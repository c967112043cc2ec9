using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using SharpTune.Api;
using SharpTune.Board.Chat;
using SharpTune.Board.Compare;
using SharpTune.Board.Evaluate;
using SharpTune.Board.Export;
using SharpTune.Hub;

namespace SharpTune.Board;

/// <summary>
/// SharpTune Board, the web UI of `sharptune webui`: the embedded page (<see cref="StaticAssets"/>) and its JSON API
/// under <c>/api/</c>, on the Kestrel hosting the OpenAI server uses (<see cref="ServerBinding"/>). Every request
/// passes <see cref="GuardAsync"/>: the Host rule (DNS rebinding), the same-origin rule, the session when a token is
/// set, the CSRF header on state-changing requests; errors are <c>{"error": message}</c> with their status. Each tab
/// maps its endpoints in its own class (<c>XxxEndpoints.Map</c>); file paths go through <see cref="Roots"/>.
/// </summary>
public sealed class BoardServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerBinding _binding;
    private readonly StaticAssets _assets = new();
    private readonly CancellationTokenSource _stopping = new();

    public BoardOptions Options { get; }
    public BoardRoots Roots { get; }
    public BoardAuth Auth { get; }
    public I18n I18n { get; }
    public Runs.RunQueue Runs { get; }

    /// <summary>Cancelled when the board stops: long requests (event streams) end with it.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>The first address the board listens on (with the real port when started on port 0).</summary>
    public Uri Address { get; private set; } = null!;

    public bool IsLoopbackOnly => _binding.IsLoopbackOnly;

    private BoardServer(BoardOptions options)
    {
        options.Validate();
        Options = options;
        _binding = new ServerBinding(options.Host, options.Port, []);
        if (!_binding.IsLoopbackOnly && string.IsNullOrEmpty(options.Token))
            throw new ArgumentException($"--host '{options.Host}' is not a loopback address: give --token T so that only people with the token can use the board");
        Roots = new BoardRoots(options.Root, options.HubCache ?? HubCache.Root());
        Auth = new BoardAuth(options.Token);
        I18n = new I18n(_assets);
        Runs = new Runs.RunQueue(Roots, options.Command ?? SharpTuneCommand.Current());

        _app = _binding.CreateBuilder(options.MaxRequestBodyBytes).Build();
        _app.Lifetime.ApplicationStopping.Register(_stopping.Cancel);
        _app.UseStatusCodePages(WriteStatusCodeError);
        _app.Use(GuardAsync);
        var api = _app.MapGroup("/api");
        SessionEndpoints.Map(api, this);
        TopBarEndpoints.Map(api, this);
        Train.TrainEndpoints.Map(api, this);
        EvaluateEndpoints.Map(api, this);
        ChatEndpoints.Map(api, this);
        CompareEndpoints.Map(api, this);
        ExportEndpoints.Map(api, this);
        _app.MapMethods("/{**path}", [HttpMethods.Get, HttpMethods.Head], ServeAsset);
    }

    /// <summary>Starts listening.</summary>
    public static async Task<BoardServer> StartAsync(BoardOptions options)
    {
        var server = new BoardServer(options);
        try
        {
            await server._app.StartAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        server.Address = new Uri(server._app.Urls.First());
        return server;
    }

    /// <summary>Completes when the host stops (Ctrl+C / SIGTERM, or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Runs.Dispose();
        _stopping.Dispose();
    }

    // Pages and files a visitor without a session may load: the login page and what it needs.
    private static readonly HashSet<string> OpenPaths = new(StringComparer.Ordinal)
        { "/login.html", "/login.js", "/board.css", "/api/login", "/api/session" };

    private async Task GuardAsync(HttpContext ctx, RequestDelegate next)
    {
        var headers = ctx.Response.Headers;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";
        headers.CacheControl = "no-store";
        try
        {
            if (!_binding.AnswersHost(ctx.Request.Host.Host))
                throw new BoardException(403, $"this board does not answer for the host name {BoardException.Quote(ctx.Request.Host.Host)}");
            if (ctx.Request.Headers.Origin is { Count: > 0 } origin && !SameOrigin(ctx, origin.ToString()))
                throw new BoardException(403, $"requests from pages at {BoardException.Quote(origin.ToString())} are not allowed");
            string path = ctx.Request.Path.Value ?? "/";
            if (HttpMethods.IsGet(ctx.Request.Method) && !path.StartsWith("/api/", StringComparison.Ordinal)) BoardAuth.IssueCsrfCookie(ctx);
            if (!Auth.IsSignedIn(ctx.Request) && !OpenPaths.Contains(path) && !path.StartsWith("/api/i18n/", StringComparison.Ordinal))
            {
                if (path.StartsWith("/api/", StringComparison.Ordinal)) throw new BoardException(401, "sign in with the board's token first");
                ctx.Response.Redirect("/login.html");
                return;
            }
            BoardAuth.RequireCsrf(ctx.Request);
            await next(ctx);
        }
        catch (BoardException e) when (!ctx.Response.HasStarted)
        {
            await WriteErrorAsync(ctx, e);
        }
        catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
        {
            string message = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"the request body is larger than the board's limit of {Options.MaxRequestBodyBytes} bytes"
                : e.Message;
            await WriteErrorAsync(ctx, new BoardException(e.StatusCode, message));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested || _stopping.IsCancellationRequested)
        {
            // The page went away or the board is stopping.
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"[sharptune] board: error serving {ctx.Request.Method} {ctx.Request.Path}: {e}");
            if (!ctx.Response.HasStarted) await WriteErrorAsync(ctx, new BoardException(500, $"the board failed: {e.Message}"));
        }
    }

    // A browser sends Origin with every POST and with cross-origin requests; only the board's own pages may call it.
    private static bool SameOrigin(HttpContext ctx, string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri)
        && uri.Scheme == ctx.Request.Scheme
        && string.Equals(uri.Authority, ctx.Request.Host.Value, StringComparison.OrdinalIgnoreCase);

    private IResult ServeAsset(HttpContext ctx, string? path)
    {
        string name = string.IsNullOrEmpty(path) ? "index.html" : path;
        if (name.StartsWith("api/", StringComparison.Ordinal) || !_assets.TryGet(name, out byte[] content))
            throw BoardException.NotFound($"no such page or endpoint: {BoardException.Quote("/" + (path ?? ""))}");
        return Results.Bytes(content, StaticAssets.ContentType(name));
    }

    private static Task WriteStatusCodeError(StatusCodeContext context)
    {
        var ctx = context.HttpContext;
        var error = ctx.Response.StatusCode switch
        {
            404 => BoardException.NotFound($"no such endpoint: {ctx.Request.Method} {BoardException.Quote(ctx.Request.Path.ToString())}"),
            405 => new BoardException(405, $"method {ctx.Request.Method} is not allowed for {BoardException.Quote(ctx.Request.Path.ToString())}"),
            int status => new BoardException(status, $"HTTP {status}"),
        };
        return WriteErrorAsync(ctx, error);
    }

    private static async Task WriteErrorAsync(HttpContext ctx, BoardException e)
    {
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await ctx.Response.WriteAsync(e.ToJson().ToJsonString(BoardJson.Options));
    }
}
