namespace SharpTune.Hub;

/// <summary>Which hub a Hub id is fetched from.</summary>
public enum HubKind { HuggingFace, ModelScope }

/// <summary>
/// Where and how SharpTune talks to a hub. For the Hugging Face Hub, read from the environment as huggingface_hub
/// reads it: <c>HF_ENDPOINT</c> (a mirror; default https://huggingface.co), the token from <c>HF_TOKEN</c> or the
/// token file (<c>HF_TOKEN_PATH</c>, else <c>HF_HOME/token</c>, where <c>huggingface-cli login</c> writes it), the
/// cache of <see cref="HubCache.Root"/>. For ModelScope, as the modelscope library reads it: <c>MODELSCOPE_DOMAIN</c>
/// (default www.modelscope.cn, https:// added when it names no scheme), <c>MODELSCOPE_API_TOKEN</c>, and the cache
/// of <see cref="ModelScopeDownload.Root"/>. <c>HF_HUB_OFFLINE</c> (1/true/yes/on: the cache only, no request at
/// all) serves both, modelscope having no offline switch of its own.
/// </summary>
public sealed record HubSettings(string Endpoint, string? Token, string CacheRoot, bool Offline, HubKind Kind = HubKind.HuggingFace)
{
    public const string DefaultEndpoint = "https://huggingface.co";
    public const string DefaultModelScopeEndpoint = "https://www.modelscope.cn";

    /// <summary>The hub LLaMA-Factory would use: ModelScope when <c>USE_MODELSCOPE_HUB</c> is 1/true/y, else Hugging Face.</summary>
    public static HubSettings FromEnvironment() => For(ModelScopeChosen() ? HubKind.ModelScope : HubKind.HuggingFace);

    /// <summary>Whether <c>USE_MODELSCOPE_HUB</c> is 1/true/y, as LLaMA-Factory's use_modelscope reads it.</summary>
    public static bool ModelScopeChosen() =>
        Environment.GetEnvironmentVariable("USE_MODELSCOPE_HUB")?.Trim().ToLowerInvariant() is "1" or "true" or "y";

    /// <summary>The settings of the hub <paramref name="kind"/>, read from the environment.</summary>
    public static HubSettings For(HubKind kind) => kind == HubKind.ModelScope
        ? new(ModelScopeEndpoint(), Environment.GetEnvironmentVariable("MODELSCOPE_API_TOKEN") is { } msToken && msToken.Trim().Length > 0 ? msToken.Trim() : null,
            ModelScopeDownload.Root(), IsTrue(Environment.GetEnvironmentVariable("HF_HUB_OFFLINE")), HubKind.ModelScope)
        : new(Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } endpoint ? endpoint.TrimEnd('/') : DefaultEndpoint,
            ReadToken(),
            HubCache.Root(),
            IsTrue(Environment.GetEnvironmentVariable("HF_HUB_OFFLINE")));

    /// <summary>The variable that names this hub's endpoint, for messages.</summary>
    public string EndpointVariable => Kind == HubKind.ModelScope ? "MODELSCOPE_DOMAIN" : "HF_ENDPOINT";

    /// <summary>The hub's name, for messages.</summary>
    public string HubName => Kind == HubKind.ModelScope ? "ModelScope" : "Hugging Face Hub";

    /// <summary>
    /// modelscope's endpoint: <c>MODELSCOPE_DOMAIN</c> is a host name to which https:// is added; a value that already
    /// names a scheme is taken as it is (as modelscope's resolve_endpoint takes one), which lets a mirror speak http.
    /// </summary>
    private static string ModelScopeEndpoint()
    {
        string? domain = Environment.GetEnvironmentVariable("MODELSCOPE_DOMAIN")?.Trim().TrimEnd('/');
        if (string.IsNullOrEmpty(domain)) return DefaultModelScopeEndpoint;
        return domain.StartsWith("http://", StringComparison.Ordinal) || domain.StartsWith("https://", StringComparison.Ordinal) ? domain : "https://" + domain;
    }

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
