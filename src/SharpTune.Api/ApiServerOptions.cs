namespace SharpTune.Api;

/// <summary>
/// Where and how the server listens; the defaults are the safe ones (loopback, 4 MiB bodies, no cross-origin
/// requests, at most 10 minutes per generation).
/// </summary>
public sealed record ApiServerOptions
{
    /// <summary>An IP address, or a name whose addresses (<see cref="ServerBinding.ResolveHost"/>) are all bound.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port, the same on every address (see <see cref="ApiServer.Addresses"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer</c> this key.</summary>
    public string? ApiKey { get; init; }
    public long MaxRequestBodyBytes { get; init; } = 4 * 1024 * 1024;
    /// <summary>Requests waiting for the generation worker beyond this many are refused with 429.</summary>
    public int MaxQueuedRequests { get; init; } = 64;
    /// <summary>
    /// Host names a request's <c>Host</c> header may carry besides the bound addresses (and <c>localhost</c> on
    /// loopback). On loopback any other name is refused (DNS rebinding); elsewhere the check applies once a name is listed.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];
    /// <summary>Origins (<c>https://app.example</c>, or <c>*</c>) whose web pages may call the server; a request from any other origin is refused.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>The most tokens one completion may ask for (max_tokens); null: the model's context length.</summary>
    public int? MaxTokensLimit { get; init; }
    /// <summary>The longest one generation may run, from when the worker starts it; it then ends with finish_reason "length".</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The longest <see cref="RequestTimeout"/>: CancellationTokenSource.CancelAfter takes at most int.MaxValue milliseconds (about 24 days).</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be between 0 and 65535, got {Port}");
        if (MaxTokensLimit is < 1) throw new ArgumentException($"--max-tokens-limit must be at least 1, got {MaxTokensLimit}");
        if (!(RequestTimeout > TimeSpan.Zero && RequestTimeout <= MaxRequestTimeout))
            throw new ArgumentException($"--request-timeout must be more than 0 and at most {MaxRequestTimeout.TotalSeconds:0} seconds, got {RequestTimeout.TotalSeconds}");
        foreach (string name in AllowedHosts)
            if (Uri.CheckHostName(name.Trim('[', ']')) == UriHostNameType.Unknown)
                throw new ArgumentException($"--allowed-host '{name}' is not a host name or address (give the name alone, as api.example, without scheme or port)");
        foreach (string origin in CorsOrigins)
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && string.Equals(uri.GetLeftPart(UriPartial.Authority), origin.TrimEnd('/'), StringComparison.OrdinalIgnoreCase)
                && uri.AbsolutePath == "/"))
                throw new ArgumentException($"--cors-origin '{origin}' is not an origin: give scheme, host and optional port, as https://app.example:8443, or *");
    }
}
