using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace SharpTune.Board;

/// <summary>
/// Who may use the board. With a token, the login page trades it (<c>POST /api/login</c>) for a session cookie
/// (HttpOnly, SameSite=Strict), which every other request then needs. Always, a state-changing request (anything
/// but GET and HEAD) must echo the <c>sharptune_csrf</c> cookie in the <c>X-CSRF-Token</c> header (double submit):
/// a page on another site can make the browser send the board's cookies but can neither read them nor add the header.
/// </summary>
public sealed class BoardAuth(string? token)
{
    public const string SessionCookie = "sharptune_session";
    public const string CsrfCookie = "sharptune_csrf";
    public const string CsrfHeader = "X-CSRF-Token";

    private readonly byte[]? _tokenHash = token is { Length: > 0 } ? Hash(token) : null;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);

    public bool TokenRequired => _tokenHash is not null;

    /// <summary>True when no token is set or the request carries a live session cookie.</summary>
    public bool IsSignedIn(HttpRequest request) =>
        _tokenHash is null || (request.Cookies[SessionCookie] is { } id && _sessions.ContainsKey(id));

    /// <summary>Checks the token (in time independent of where it differs) and sets a new session cookie.</summary>
    public void SignIn(HttpContext ctx, string given)
    {
        if (_tokenHash is null) return;
        if (!CryptographicOperations.FixedTimeEquals(Hash(given), _tokenHash))
            throw new BoardException(401, "wrong token");
        string id = RandomNumberGenerator.GetHexString(64, lowercase: true);
        _sessions[id] = DateTimeOffset.UtcNow;
        ctx.Response.Cookies.Append(SessionCookie, id, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/" });
    }

    /// <summary>Gives the page its CSRF cookie when it has none (readable by the page's script, which echoes it).</summary>
    public static void IssueCsrfCookie(HttpContext ctx)
    {
        if (ctx.Request.Cookies.ContainsKey(CsrfCookie)) return;
        ctx.Response.Cookies.Append(CsrfCookie, RandomNumberGenerator.GetHexString(32, lowercase: true),
            new CookieOptions { HttpOnly = false, SameSite = SameSiteMode.Strict, Path = "/" });
    }

    /// <summary>A 403 unless a state-changing request echoes its CSRF cookie in the header.</summary>
    public static void RequireCsrf(HttpRequest request)
    {
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) return;
        string? cookie = request.Cookies[CsrfCookie];
        string header = request.Headers[CsrfHeader].ToString();
        if (cookie is not { Length: > 0 } || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(cookie), Encoding.UTF8.GetBytes(header)))
            throw new BoardException(403, $"missing or wrong {CsrfHeader} header: reload the page");
    }

    private static byte[] Hash(string text) => SHA256.HashData(Encoding.UTF8.GetBytes(text));
}
