namespace SharpTune.Hub;

/// <summary>
/// Where and how SharpTune talks to the Hugging Face Hub, read from the environment as huggingface_hub reads it:
/// <c>HF_ENDPOINT</c> (a mirror; default https://huggingface.co), the token from <c>HF_TOKEN</c> or the token file
/// (<c>HF_TOKEN_PATH</c>, else <c>HF_HOME/token</c>, where <c>huggingface-cli login</c> writes it), the cache of
/// <see cref="HubCache.Root"/>, and <c>HF_HUB_OFFLINE</c> (1/true/yes/on: the cache only, no request at all).
/// </summary>
public sealed record HubSettings(string Endpoint, string? Token, string CacheRoot, bool Offline)
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public static HubSettings FromEnvironment() => new(
        Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } endpoint ? endpoint.TrimEnd('/') : DefaultEndpoint,
        ReadToken(),
        HubCache.Root(),
        IsTrue(Environment.GetEnvironmentVariable("HF_HUB_OFFLINE")));

    private static string? ReadToken()
    {
        if (Environment.GetEnvironmentVariable("HF_TOKEN") is { } token && token.Trim().Length > 0) return token.Trim();
        string path = Environment.GetEnvironmentVariable("HF_TOKEN_PATH") is { Length: > 0 } tokenPath
            ? tokenPath
            : Path.Combine(HubCache.Home(), "token");
        return File.Exists(path) && File.ReadAllText(path).Trim() is { Length: > 0 } stored ? stored : null;
    }

    /// <summary>huggingface_hub's truthy values for boolean variables.</summary>
    private static bool IsTrue(string? value) =>
        value?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
}
