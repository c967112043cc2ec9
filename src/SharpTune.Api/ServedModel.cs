using SharpTune.Chat;
using SharpTune.Hparams;
using SharpTune.Inference;
using SharpTune.Quantization;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Api;

/// <summary>
/// One model id the server answers for: a model folder with its adapters, loaded the way <c>chat</c> loads it
/// (<see cref="ChatSession.Open"/>: same tokenizer, template and default generation options).
/// </summary>
public sealed class ServedModel : IDisposable
{
    private readonly ChatSession _session;

    /// <summary>The id clients send as <c>model</c>.</summary>
    public string Id { get; }
    public Tokenizer Tokenizer => _session.Tokenizer;
    /// <summary>The session's template with the server's default system text and tool format, if given.</summary>
    public ChatTemplate Template { get; }
    /// <summary>The model folder's generation settings with the template's stop words, before a request's own.</summary>
    public GenerationOptions Defaults { get; }
    /// <summary>The most tokens a prompt and its completion may take together.</summary>
    public int ContextLength { get; }
    /// <summary>Whether special tokens are left out of generated text.</summary>
    public bool SkipSpecialTokens { get; }
    public Generator Generator { get; }
    /// <summary>Every token's bytes, for constrained replies: built on first use, once per model id.</summary>
    public TokenBytes TokenBytes => _tokenBytes.Value;
    private readonly Lazy<TokenBytes> _tokenBytes;

    private ServedModel(string id, ChatSession session, ChatTemplate template, GenerationOptions defaults, int contextLength, bool skipSpecialTokens)
    {
        Id = id;
        _session = session;
        Template = template;
        Defaults = defaults;
        ContextLength = contextLength;
        SkipSpecialTokens = skipSpecialTokens;
        Generator = new Generator(session.Model);
        _tokenBytes = new Lazy<TokenBytes>(() => new TokenBytes(session.Tokenizer));
    }

    /// <param name="contextLength">A limit below the model's max_position_embeddings, or null for that.</param>
    /// <param name="defaultSystem">LLaMA-Factory's <c>default_system</c>: replaces the template's default system text.</param>
    /// <param name="toolFormat">LLaMA-Factory's <c>tool_format</c>: replaces the template's tool format.</param>
    /// <param name="defaults">Turns the model folder's generation options into the server's defaults (e.g. a config's keys).</param>
    public static ServedModel Load(string id, string modelDir, IReadOnlyList<string> adapterDirs, string? templateName,
        QuantizationOptions? quantization, int? contextLength = null, string? defaultSystem = null, string? toolFormat = null, bool skipSpecialTokens = true,
        Func<GenerationOptions, GenerationOptions>? defaults = null)
    {
        var session = ChatSession.Open(modelDir, templateName, system: null, adapterDirs, quantization);
        try
        {
            int maxPositions = session.Model.Config.MaxPositionEmbeddings;
            if (contextLength is int limit && (limit < 2 || limit > maxPositions))
                throw new ArgumentException($"context length must be between 2 and the model's max_position_embeddings ({maxPositions}), got {limit}");
            var options = session.DefaultOptions();
            if (defaults is not null) options = defaults(options) with { StopTokenIds = options.StopTokenIds };
            options.Validate();
            var template = session.Template;
            if (defaultSystem is not null) template = template.WithDefaultSystem(defaultSystem);
            if (toolFormat is not null) template = template.WithToolFormat(toolFormat);
            return new ServedModel(id, session, template, options, contextLength ?? maxPositions, skipSpecialTokens);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What LLaMA-Factory's API serves for a config: the base with adapter_name_or_path stacked, as one model id
    /// (<paramref name="id"/>, else the last adapter's or the model's folder name); template, default_system,
    /// tool_format, quantization and the generation keys (LLaMA-Factory's defaults for those not written) apply.
    /// </summary>
    public static ServedModel FromConfig(SftConfig cfg, string? id, int? contextLength)
    {
        var g = cfg.Generating;
        var adapters = cfg.Model.AdapterNameOrPath;
        id ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(adapters.Count > 0 ? adapters[^1] : cfg.Model.ModelNameOrPath));
        return Load(id, cfg.Model.ModelNameOrPath, adapters, cfg.Data.Template ?? "auto", cfg.Model.Quantization,
            contextLength, cfg.Data.DefaultSystem, cfg.Data.ToolFormat, g.SkipSpecialTokens,
            o => o.With(g));
    }

    /// <summary>A chat request's prompt ids, rendered exactly as <c>chat</c> renders (<see cref="ChatTemplate.EncodePrompt"/>).</summary>
    /// <param name="enableThinking">Qwen3's <c>enable_thinking</c> for thinking templates; null renders as the model's own template does by default.</param>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, string? toolsJson, bool? enableThinking = null) =>
        Template.EncodePrompt(Tokenizer, messages, toolsJson, enableThinking);

    public void Dispose() => _session.Dispose();
}
