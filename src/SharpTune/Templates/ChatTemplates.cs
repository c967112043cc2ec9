using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharpTune.Templates;

/// <summary>
/// The named templates (LLaMA-Factory's names and slots) and <c>template: auto</c> detection from a model folder.
/// </summary>
/// <remarks>
/// Templates reached by auto detection render exactly what the model's own Jinja template renders; where that differs
/// from LLaMA-Factory's template of the same family the model's format wins and the difference is noted on the
/// template. Default system texts:
/// <list type="bullet">
/// <item><c>qwen</c>: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." (Qwen2.5 Jinja and LLaMA-Factory agree).</item>
/// <item><c>qwen1.5</c>: "You are a helpful assistant" without a period, as Qwen1.5-Chat's Jinja writes it.</item>
/// <item><c>qwen2</c>: "You are a helpful assistant." with a period, as Qwen2-Instruct's Jinja writes it.</item>
/// <item><c>chatml</c>, <c>qwen3</c>, <c>qwen3_nothink</c>, <c>llama3</c>, <c>chatglm3</c>, <c>glm4</c>, <c>empty</c>: none (LLaMA-Factory's <c>chatml</c> has no default system).</item>
/// </list>
/// </remarks>
public static partial class ChatTemplates
{
    private const string ImSystem = "<|im_start|>system\n{{content}}<|im_end|>\n";
    private const string ImUser = "<|im_start|>user\n{{content}}<|im_end|>\n";
    private const string ImAssistantHeader = "<|im_start|>assistant\n";
    private const string ImAssistant = "{{content}}<|im_end|>\n";
    private static readonly (string, string, string) QwenObservation = ("<|im_start|>user", "\n<tool_response>\n{{content}}\n</tool_response>", "<|im_end|>\n");
    private static readonly (string, string, string) ChatmlObservation = ("", "<|im_start|>tool\n{{content}}<|im_end|>\n", "");

    private static readonly Dictionary<string, ChatTemplate> Registry = new ChatTemplate[]
    {
        // Qwen2.5-Instruct's format; also LLaMA-Factory's `qwen`.
        Qwen("qwen", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", new QwenToolFormat(separatorOnlyAfterSystem: false, rawStringArguments: false), thinking: false),
        // Qwen3's format (thinking). Unlike LLaMA-Factory's `qwen3`, the tool prompt has no leading blank line when
        // there is no system text, as in Qwen3's own template.
        Qwen("qwen3", null, new QwenToolFormat(separatorOnlyAfterSystem: true, rawStringArguments: true), thinking: true),
        Qwen("qwen3_nothink", null, new QwenToolFormat(separatorOnlyAfterSystem: false, rawStringArguments: false), thinking: false),
        Chatml("chatml", null, new DefaultToolFormat(), ["<|im_end|>", "<|im_start|>"]),
        // Qwen1.5-Chat and Qwen2-Instruct: ChatML with a default system and no tool support in the model's template.
        Chatml("qwen1.5", "You are a helpful assistant", null, ["<|im_end|>"]),
        Chatml("qwen2", "You are a helpful assistant.", null, ["<|im_end|>"]),
        new ChatTemplate
        {
            Name = "llama3",
            Prefix = "<|begin_of_text|>",
            SystemSlot = "<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>",
            UserSlot = "<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|>",
            GenerationPrompt = "<|start_header_id|>assistant<|end_header_id|>\n\n",
            AssistantSlot = "{{content}}<|eot_id|>",
            FunctionSlot = "{{content}}<|eot_id|>",
            Observation = ("", "<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|>", ""),
            Tools = new Llama3ToolFormat(),
            StopWords = ["<|eot_id|>", "<|eom_id|>"],
            ReplaceEos = true,
        },
        new ChatTemplate
        {
            Name = "alpaca",
            UserSlot = "### Instruction:\n{{content}}\n\n",
            GenerationPrompt = "### Response:\n",
            AssistantSlot = "{{content}}{{eos_token}}\n\n",
            FunctionSlot = "{{content}}{{eos_token}}\n\n",
            // LLaMA-Factory falls back to the user slot for tool results.
            Observation = ("", "### Instruction:\n{{content}}\n\n", ""),
            Tools = new DefaultToolFormat(),
            DefaultSystem = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n",
        },
        new ChatTemplate { Name = "empty", Tools = new DefaultToolFormat() },
        // ChatGLM3-6B: LLaMA-Factory's chatglm3, whose slots are element lists: the prefix and role tokens are looked up
        // by id (its SentencePiece tokenizer does not recognise them in text) and the newline after a role token is
        // encoded apart from the content. The answer opens with that newline (ChatGLM3's empty metadata line).
        Glm("chatglm3", "[gMASK]sop", prefixTokens: ["[gMASK]", "sop"], roleTokens: ["<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]),
        // GLM-4-9B: the same format, but its tiktoken tokenizer recognises the special tokens in text.
        Glm("glm4", "[gMASK]<sop>", prefixTokens: [], roleTokens: []),
    }.ToDictionary(t => t.Name, StringComparer.Ordinal);

    public static IReadOnlyCollection<string> Names { get; } = Registry.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>The template registered under <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static ChatTemplate Get(string name) =>
        Registry.TryGetValue(name, out var template)
            ? template
            : throw new ArgumentException($"Unknown chat template '{name}'. Known templates: {string.Join(", ", Names)}.", nameof(name));

    /// <summary>
    /// The template a model folder is used with: the named one, or the detected one for null/"auto"; bound to the
    /// folder's eos token (tokenizer_config.json) so templates whose slots write it (alpaca) render.
    /// </summary>
    public static ChatTemplate ForModel(string? name, string dir)
    {
        var template = name is null or "auto" ? FromModelDirectory(dir) : Get(name);
        return Tokenization.TokenizerConfig.EosToken(dir) is { } eos ? template.WithEosToken(eos) : template;
    }

    /// <summary>
    /// <see cref="ForModel(string?, string)"/> for a run that tokenizes with <paramref name="tokenizer"/> (the folder's):
    /// refuses a template the tokenizer cannot express (<see cref="RequireSingleTokens"/>). Train, predict, chat, the
    /// API server and compare resolve their template here.
    /// </summary>
    public static ChatTemplate ForModel(string? name, string dir, Tokenization.Tokenizer tokenizer)
    {
        var template = ForModel(name, dir);
        RequireSingleTokens(template, tokenizer, dir);
        return template;
    }

    /// <summary>
    /// Every marker the template writes — its stop words, the eos its slots write, and the <c>&lt;|...|&gt;</c> role
    /// tokens of its prefix, slots and generation prompt — must be one token of <paramref name="tokenizer"/>. Otherwise
    /// (<c>llama3</c> on a Qwen tokenizer) the marker would be split into plain text: trained as words in the labels,
    /// never matched as a stop token. A marker the template writes by id (chatglm3's, <see cref="ChatTemplate.WritesById"/>)
    /// must be a token of the vocabulary, since the tokenizer does not recognise it in text.
    /// </summary>
    /// <exception cref="InvalidDataException">The first marker that is not a single token, named with the template and folder.</exception>
    public static void RequireSingleTokens(ChatTemplate template, Tokenization.Tokenizer tokenizer, string modelDir)
    {
        foreach (var (text, role) in template.Markers())
        {
            bool single = template.WritesById(text) ? tokenizer.TokenToId(text) is not null : tokenizer.Encode(text).Length == 1;
            if (!single)
                throw new InvalidDataException(
                    $"{modelDir}: the {template.Name} template's {role} '{text}' is not a single token of this model's tokenizer (it would become plain text); use the model's own template (template: auto)");
        }
    }

    /// <summary>
    /// <c>template: auto</c>: recognises the model family from the <c>chat_template</c> in the folder's
    /// <c>tokenizer_config.json</c> (Qwen1.5, Qwen2, Qwen2.5, Qwen3), else from its <c>tokenizer_class</c> (ChatGLM3's
    /// <c>ChatGLMTokenizer</c>, GLM-4's <c>ChatGLM4Tokenizer</c>: their remote-code tokenizers build the chat prompt
    /// themselves, which the <c>chatglm3</c>/<c>glm4</c> templates restate), and returns the matching registered template.
    /// </summary>
    /// <exception cref="FileNotFoundException">No tokenizer_config.json in the folder.</exception>
    /// <exception cref="InvalidDataException">Neither a recognised chat_template nor a GLM tokenizer class in it.</exception>
    public static ChatTemplate FromModelDirectory(string dir)
    {
        var path = Path.Combine(dir, "tokenizer_config.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"Cannot pick a chat template automatically: '{path}' does not exist.", path);

        string? chatTemplate, tokenizerClass;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            chatTemplate = ReadChatTemplate(doc.RootElement);
            tokenizerClass = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("tokenizer_class", out var c)
                && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Cannot pick a chat template automatically: '{path}' is not valid JSON ({e.Message}).", e);
        }

        string? detected = (chatTemplate is null ? null : Detect(chatTemplate)) ?? tokenizerClass switch
        {
            "ChatGLMTokenizer" => "chatglm3",
            "ChatGLM4Tokenizer" => "glm4",
            _ => null,
        };
        if (detected is not null) return Get(detected);
        if (chatTemplate is null)
            throw new InvalidDataException($"Cannot pick a chat template automatically: '{path}' has no chat_template and no ChatGLM tokenizer_class. Set the template name explicitly ({string.Join(", ", Names)}).");
        throw new InvalidDataException(
            $"Cannot pick a chat template automatically: the chat_template in '{path}' is not one SharpTune recognises (Qwen1.5, Qwen2, Qwen2.5, Qwen3; ChatGLM3 and GLM-4 by their tokenizer_class). Set the template name explicitly ({string.Join(", ", Names)}).");
    }

    private static string? ReadChatTemplate(JsonElement config)
    {
        if (config.ValueKind != JsonValueKind.Object || !config.TryGetProperty("chat_template", out var value))
            return null;
        if (value.ValueKind == JsonValueKind.String)
            return value.GetString();
        // transformers also accepts a list of named templates; the one named "default" is what apply_chat_template uses.
        if (value.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.Object
                    && item.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() == "default"
                    && item.TryGetProperty("template", out var template) && template.ValueKind == JsonValueKind.String)
                    return template.GetString();
            }
        }
        return null;
    }

    /// <summary>Template name for a chat_template string, from markers distinctive of each Qwen generation.</summary>
    private static string? Detect(string chatTemplate)
    {
        if (!chatTemplate.Contains("<|im_start|>", StringComparison.Ordinal))
            return null;
        if (chatTemplate.Contains("<think>", StringComparison.Ordinal) && chatTemplate.Contains("reasoning_content", StringComparison.Ordinal))
            return "qwen3";
        if (chatTemplate.Contains("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", StringComparison.Ordinal)
            && chatTemplate.Contains("<tool_call>", StringComparison.Ordinal))
            return "qwen";

        // Qwen1.5-Chat and Qwen2-Instruct: the plain ChatML loop that inserts a default system message, told apart by
        // it. The template's newlines may be written raw or as Jinja '\n' escapes.
        if (!PlainChatmlLoop().IsMatch(chatTemplate))
            return null;
        var match = InsertedSystem().Match(chatTemplate);
        if (!match.Success)
            return null;
        return match.Groups["system"].Value switch
        {
            "You are a helpful assistant" => "qwen1.5",
            "You are a helpful assistant." => "qwen2",
            _ => null,
        };
    }

    /// <summary>
    /// The GLM formats (LLaMA-Factory's chatglm3 and glm4): no default system, the answer slot begins with the newline
    /// after <c>&lt;|assistant|&gt;</c>, tool results in an <c>&lt;|observation|&gt;</c> turn, GLM-4's tool format, stop
    /// words <c>&lt;|user|&gt;</c> and <c>&lt;|observation|&gt;</c>, and efficient_eos: no eos after each answer, one
    /// eos at the end of a training sequence (the data layer's SupervisedProcessor).
    /// </summary>
    private static ChatTemplate Glm(string name, string prefix, string[] prefixTokens, string[] roleTokens) => new()
    {
        Name = name,
        Prefix = prefix,
        PrefixTokens = prefixTokens,
        RoleTokens = roleTokens,
        SystemSlot = "<|system|>\n{{content}}",
        UserSlot = "<|user|>\n{{content}}",
        GenerationPrompt = "<|assistant|>",
        AssistantSlot = "\n{{content}}",
        FunctionSlot = "{{content}}",
        Observation = ("", "<|observation|>\n{{content}}", ""),
        Tools = new Glm4ToolFormat(),
        StopWords = ["<|user|>", "<|observation|>"],
        EfficientEos = true,
        ReplyMetadataLine = true,
    };

    /// <summary>Qwen's formats: ChatML with tool results wrapped in &lt;tool_response&gt; inside a user turn.</summary>
    private static ChatTemplate Qwen(string name, string? defaultSystem, QwenToolFormat tools, bool thinking) =>
        Chatml(name, defaultSystem, tools, ["<|im_end|>"], QwenObservation, thinking);

    private static ChatTemplate Chatml(string name, string? defaultSystem, ToolFormat? tools, string[] stopWords) =>
        Chatml(name, defaultSystem, tools, stopWords, ChatmlObservation, thinking: false);

    private static ChatTemplate Chatml(string name, string? defaultSystem, ToolFormat? tools, string[] stopWords,
        (string, string, string) observation, bool thinking) => new()
    {
        Name = name,
        SystemSlot = ImSystem,
        UserSlot = ImUser,
        GenerationPrompt = ImAssistantHeader,
        AssistantSlot = ImAssistant,
        FunctionSlot = ImAssistant,
        Observation = observation,
        Tools = tools,
        DefaultSystem = defaultSystem,
        StopWords = stopWords,
        ReplaceEos = true,
        Thinking = thinking,
    };

    [GeneratedRegex(@"'<\|im_start\|>' \+ message\['role'\] \+ '(?:\n|\\n)' \+ message\['content'\] \+ '<\|im_end\|>'")]
    private static partial Regex PlainChatmlLoop();

    [GeneratedRegex(@"'<\|im_start\|>system(?:\n|\\n)(?<system>[^'<]*)<\|im_end\|>(?:\n|\\n)'")]
    private static partial Regex InsertedSystem();
}
