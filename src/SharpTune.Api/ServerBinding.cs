using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SharpTune.Api;

/// <summary>
/// Where a Kestrel server of SharpTune listens and which Host names it answers: the hosting the OpenAI API server
/// and the web board share. A host is resolved to the addresses bound (<see cref="ResolveHost"/>), one port serves
/// them all, request bodies are bounded, and on loopback a request naming any other host is refused (DNS rebinding).
/// </summary>
public sealed class ServerBinding
{
    private readonly HashSet<string>? _hostNames;
    private readonly int _port;

    /// <summary>The addresses the server binds.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; }

    /// <summary>True when every bound address is a loopback one (only this machine can connect).</summary>
    public bool IsLoopbackOnly { get; }

    /// <param name="host">An IP address, or a name whose every address is bound.</param>
    /// <param name="port">0 picks a free port, the same on every address.</param>
    /// <param name="allowedHosts">Names a request's Host header may carry besides the bound addresses (and localhost on loopback).</param>
    /// <exception cref="ArgumentException">The host is not an address or a name that resolves.</exception>
    public ServerBinding(string host, int port, IReadOnlyList<string> allowedHosts)
    {
        Addresses = ResolveHost(host);
        IsLoopbackOnly = Addresses.All(IPAddress.IsLoopback);
        _hostNames = HostNames(host, allowedHosts, Addresses, IsLoopbackOnly);
        _port = port == 0 && Addresses.Count > 1 ? FreePort(Addresses[0]) : port;
    }

    /// <summary>A slim ASP.NET Core builder listening on the addresses: no logging, no Server header, bodies up to <paramref name="maxRequestBodyBytes"/>.</summary>
    public WebApplicationBuilder CreateBuilder(long maxRequestBodyBytes)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = maxRequestBodyBytes;
            k.AddServerHeader = false;
            foreach (var address in Addresses) k.Listen(address, _port);
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(10));
        return builder;
    }

    /// <summary>
    /// Whether a request's Host header name is answered: any when not on loopback and no names are allowed; else a
    /// bound address, the host given, <c>localhost</c> on loopback, or an allowed name. On loopback this is what stops
    /// DNS rebinding: a page whose own name now points at 127.0.0.1 still sends that name as Host.
    /// </summary>
    public bool AnswersHost(string requestHost) => _hostNames is null || _hostNames.Contains(NormalHost(requestHost));

    /// <summary>
    /// The addresses <paramref name="host"/> stands for: an IP address (IPv6 with or without brackets) itself, a name
    /// every address a DNS lookup gives for it. Anything else, an out-of-range address such as 256.1.1.1 included, is
    /// an <see cref="ArgumentException"/>, since Kestrel would take it as "every address".
    /// </summary>
    public static IReadOnlyList<IPAddress> ResolveHost(string host)
    {
        string text = host.Length > 1 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        if (text.Contains(':'))
            return IPAddress.TryParse(text, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6
                ? [v6]
                : throw new ArgumentException($"--host '{host}' is not a valid IPv6 address");
        // IPAddress.TryParse also takes "1.2.3" and "7" (inet_aton forms); a listening address is written in full.
        if (text.Length > 0 && text.All(c => char.IsAsciiDigit(c) || c == '.'))
            return text.Split('.').Length == 4 && IPAddress.TryParse(text, out var v4)
                ? [v4]
                : throw new ArgumentException($"--host '{host}' is not a valid IPv4 address (four numbers from 0 to 255)");
        if (Uri.CheckHostName(text) != UriHostNameType.Dns)
            throw new ArgumentException($"--host '{host}' is neither an IP address nor a host name");
        IPAddress[] resolved;
        try
        {
            resolved = Dns.GetHostAddresses(text);
        }
        catch (SocketException e)
        {
            throw new ArgumentException($"--host '{host}' does not resolve to an address: {e.Message}", e);
        }
        return resolved.Length > 0 ? resolved.Distinct().ToList() : throw new ArgumentException($"--host '{host}' resolves to no address");
    }

    /// <summary>
    /// JSON only (UTF-8, charset or not): a web page may send text/plain or a form to any address without a CORS
    /// preflight, but application/json only after one, which an origin not allowed never passes.
    /// </summary>
    public static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType, "application/json", StringComparison.OrdinalIgnoreCase)
        && (media.CharSet is null || string.Equals(media.CharSet.Trim('"'), "utf-8", StringComparison.OrdinalIgnoreCase));

    // Kestrel picks a free port per listener, but a name may stand for several addresses (localhost: 127.0.0.1 and
    // ::1) that should all answer on one port; so for port 0 the system is asked for one free port first.
    private static int FreePort(IPAddress address)
    {
        var probe = new TcpListener(address, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    // The names a request's Host header may carry, or null when any is answered (not on loopback, no names allowed).
    private static HashSet<string>? HostNames(string host, IReadOnlyList<string> allowedHosts, IReadOnlyList<IPAddress> addresses, bool loopback)
    {
        if (!loopback && allowedHosts.Count == 0) return null;
        var names = new HashSet<string>(allowedHosts.Select(NormalHost), StringComparer.OrdinalIgnoreCase);
        if (loopback) names.Add("localhost");
        names.Add(NormalHost(host));
        foreach (var address in addresses) names.Add(address.ToString());
        return names;
    }

    // A Host header's name without brackets or a final dot, and an address in its one written form.
    private static string NormalHost(string host)
    {
        string name = host.Trim('[', ']').TrimEnd('.');
        return IPAddress.TryParse(name, out var ip) ? ip.ToString() : name;
    }
}
