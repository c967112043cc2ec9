namespace SharpTune.Api;

/// <summary>Where and how the server listens; the defaults are the safe ones (loopback, 4 MiB bodies).</summary>
public sealed record ApiServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (see <see cref="ApiServer.Address"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer</c> this key.</summary>
    public string? ApiKey { get; init; }
    public long MaxRequestBodyBytes { get; init; } = 4 * 1024 * 1024;
    /// <summary>Requests waiting for the generation worker beyond this many are refused with 429.</summary>
    public int MaxQueuedRequests { get; init; } = 64;
}
