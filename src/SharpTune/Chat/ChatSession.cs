using SharpTune.Hub;
using SharpTune.Inference;
using SharpTune.Model;
using SharpTune.Quantization;
using SharpTune.Templates;
using SharpTune.Tokenization;
using SharpTune.Training.Model;

namespace SharpTune.Chat;

/// <summary>
/// A conversation with a model: keeps the history, renders it through the chat template the model was trained
/// with, generates the reply and streams its text. One definition of the template serves chat, training and the API.
/// A session from <see cref="Open"/> owns its model and unmaps the checkpoint on <see cref="Dispose"/>; a model
/// passed to the constructor stays the caller's to dispose.
/// </summary>
public sealed class ChatSession : IDisposable
{
    private readonly List<ChatMessage> _history = [];
    private readonly bool _ownsModel;

    public DecoderModel Model { get; }
    public Tokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }
    /// <summary>The system prompt; null uses the template's default system prompt.</summary>
    public string? System { get; set; }

    public ChatSession(DecoderModel model, Tokenizer tokenizer, ChatTemplate template, string? system = null)
        : this(model, tokenizer, template, system, ownsModel: false)
    {
    }

    private ChatSession(DecoderModel model, Tokenizer tokenizer, ChatTemplate template, string? system, bool ownsModel)
    {
        _ownsModel = ownsModel;
        Model = model;
        Tokenizer = tokenizer;
        Template = template;
        System = system;
    }

    /// <summary>
    /// Loads a model folder (or a Hub id's snapshot in the Hugging Face cache, downloaded on first use) with its own tokenizer; template
    /// "auto" (or null) reads tokenizer_config.json. LoRA adapters in <paramref name="adapterDirs"/> are applied
    /// unmerged, in order; the tokenizer and generation settings stay the base's.
    /// </summary>
    public static ChatSession Open(string modelDir, string? templateName, string? system, IReadOnlyList<string>? adapterDirs = null,
        QuantizationOptions? quantization = null)
    {
        modelDir = HubDownload.FolderFor(modelDir);
        adapterDirs = adapterDirs?.Select(HubDownload.FolderFor).ToList();
        ModelFolder.Validate(modelDir);
        ModelFolder.ValidateTokenizer(modelDir);
        var tokenizer = Tokenizer.FromDirectory(modelDir);
        var template = ChatTemplates.ForModel(templateName, modelDir, tokenizer);
        var model = DecoderModel.LoadForGeneration(modelDir, adapterDirectories: adapterDirs, quantization: quantization);
        return new ChatSession(model, tokenizer, template, system, ownsModel: true);
    }

    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
    }

    public void Clear() => _history.Clear();

    /// <summary>The generation options of the model folder plus the template's stop words as stop tokens.</summary>
    public GenerationOptions DefaultOptions()
    {
        var options = GenerationOptions.FromModelFolder(Model.Directory, Model.Config);
        return WithTemplateStops(options, Tokenizer, Template);
    }

    /// <summary>The options with the template's stop tokens (<see cref="ChatTemplate.StopTokenIds"/>) added to the stop ids.</summary>
    public static GenerationOptions WithTemplateStops(GenerationOptions options, Tokenizer tokenizer, ChatTemplate template) =>
        options with { StopTokenIds = new HashSet<int>(options.StopTokenIds.Concat(template.StopTokenIds(tokenizer))) };

    /// <summary>The token ids of a conversation (after the system prompt), rendered with a generation prompt.</summary>
    public int[] PromptIds(IReadOnlyList<ChatMessage> conversation)
    {
        var messages = new List<ChatMessage>();
        if (System is not null) messages.Add(new ChatMessage(ChatRole.System, System));
        messages.AddRange(conversation);
        return Template.EncodePrompt(Tokenizer, messages);
    }

    /// <summary>
    /// Adds the user message, generates the reply (streaming text through onText) and records both. The reply is the
    /// template's <see cref="ChatTemplate.ReplyContent"/> of the generated text (ChatGLM3's model.chat: the metadata line
    /// dropped, the content stripped); generation stops at the model's eos ids and the template's stop tokens.
    /// </summary>
    public (string Text, GenerationResult Result) Reply(string userMessage, GenerationOptions options, Action<string>? onText = null, CancellationToken cancellation = default)
    {
        var conversation = new List<ChatMessage>(_history) { new(ChatRole.User, userMessage) };
        int[] prompt = PromptIds(conversation);
        var decoder = new StreamingDecoder(Tokenizer, skipSpecialTokens: true);
        var stream = new ReplyStream(Template);
        void Show(string shown)
        {
            if (shown.Length > 0) onText?.Invoke(shown);
        }
        var result = new Generator(Model).Generate(prompt, options, id => Show(stream.Push(decoder.Push(id))), cancellation);
        Show(stream.Push(decoder.Flush()));
        Show(stream.Finish());
        // What the template's model writes before the content (GLM's metadata line) is not part of the answer kept.
        string reply = stream.Reply;
        _history.Add(new ChatMessage(ChatRole.User, userMessage));
        _history.Add(new ChatMessage(ChatRole.Assistant, reply));
        return (reply, result);
    }
}
