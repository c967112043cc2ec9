using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.Tokenization;

namespace SharpTune.Templates;

/// <summary>
/// A chat template in LLaMA-Factory's slot style. One definition drives both the full-conversation rendering used for
/// chat/serving (<see cref="Render"/>, equal to the model's own Jinja <c>chat_template</c> for the Qwen templates)
/// and the per-turn (prompt, answer) texts used for supervised fine-tuning (<see cref="EncodePairs(IReadOnlyList{ChatMessage}, string?, string?)"/>,
/// LLaMA-Factory's <c>Template.encode_multiturn</c>).
/// </summary>
/// <remarks>
/// LLaMA-Factory's user and observation slots end with the assistant header; here that header is the separate
/// <see cref="GenerationPrompt"/>, so <see cref="Render"/> can honour <c>add_generation_prompt</c> while
/// <see cref="EncodePairs(IReadOnlyList{ChatMessage}, string?, string?)"/> appends it to every prompt.
/// Slots are text with one <c>{{content}}</c> placeholder; <c>{{eos_token}}</c> stands for the tokenizer's eos.
/// </remarks>
public sealed partial class ChatTemplate
{
    private const string ContentPlaceholder = "{{content}}";
    private const string EosPlaceholder = "{{eos_token}}";

    public string Name { get; internal init; } = "";

    /// <summary>System text used when a conversation has none; null when the template has none.</summary>
    public string? DefaultSystem { get => defaultSystem; internal init => defaultSystem = value; }

    /// <summary>Strings that end a generated answer; the first one is the eos when <see cref="ReplaceEos"/>.</summary>
    public IReadOnlyList<string> StopWords { get; internal init; } = [];

    /// <summary>LLaMA-Factory's efficient_eos: the answer slots carry no eos; the processor appends one eos at the end.</summary>
    public bool EfficientEos { get; internal init; }

    /// <summary>LLaMA-Factory's replace_eos: the tokenizer's eos token is replaced by <c>StopWords[0]</c>.</summary>
    public bool ReplaceEos { get; internal init; }

    /// <summary>
    /// The eos text written by slots that contain <c>{{eos_token}}</c>: <c>StopWords[0]</c> with <see cref="ReplaceEos"/>,
    /// else whatever <see cref="WithEosToken"/> bound (null until then).
    /// </summary>
    public string? EosToken => ReplaceEos ? StopWords[0] : boundEos;

    /// <summary>
    /// ChatGLM3's and GLM-4's replies open with a metadata line after <c>&lt;|assistant|&gt;</c>: empty for a plain
    /// answer, the function's name for a tool call (<see cref="ReplyContent"/>).
    /// </summary>
    public bool ReplyMetadataLine { get; internal init; }

    /// <summary>
    /// The reply a person reads, from the text generated after the generation prompt. With
    /// <see cref="ReplyMetadataLine"/> it is ChatGLM3's <c>process_response</c>: the text is split at its first
    /// newline into metadata and content; an empty metadata line leaves the content stripped of surrounding white
    /// space (also when no newline came), a non-empty one (a tool call) leaves the text as generated. Other
    /// templates: the text as generated. Chat and compare show this; chat keeps it as the history's answer, which the
    /// template renders back after a newline, as ChatGLM3's build_chat_input does.
    /// </summary>
    public string ReplyContent(string generated)
    {
        if (!ReplyMetadataLine) return generated;
        int newline = generated.IndexOf('\n');
        if (newline < 0) return PythonText.Strip(generated);
        return PythonText.Strip(generated[..newline]).Length == 0 ? PythonText.Strip(generated[(newline + 1)..]) : generated;
    }

    /// <summary>The thinking flavour (Qwen3): reasoning in <c>&lt;think&gt;</c> blocks, <c>enable_thinking</c> honoured.</summary>
    public bool Thinking { get; internal init; }

    /// <summary>Opening and closing thought words (LLaMA-Factory's <c>thought_words</c>).</summary>
    public (string Open, string Close) ThoughtWords { get; internal init; } = ("<think>\n", "\n</think>\n\n");

    /// <summary>Text before the first message (e.g. a BOS token string).</summary>
    public string Prefix { get; internal init; } = "";

    /// <summary>
    /// LLaMA-Factory's <c>{"token": ...}</c> slot elements (ChatGLM3): the special tokens that make up
    /// <see cref="Prefix"/>, in order, and the role tokens written in the slots. <see cref="Encode"/> looks each up as
    /// one id, because the tokenizer does not recognise them in text (ChatGLM3's SentencePiece tokenizer encodes
    /// "&lt;|user|&gt;" as plain pieces); it also encodes the newline that opens a slot apart from the content after
    /// it, as LLaMA-Factory encodes the elements of such a slot one by one. Empty for templates whose slots are text.
    /// </summary>
    internal IReadOnlyList<string> PrefixTokens { get; init; } = [];

    /// <inheritdoc cref="PrefixTokens"/>
    internal IReadOnlyList<string> RoleTokens { get; init; } = [];

    /// <summary>Whether <paramref name="text"/> is one of the tokens this template writes by id (<see cref="PrefixTokens"/>, <see cref="RoleTokens"/>).</summary>
    public bool WritesById(string text) => PrefixTokens.Contains(text) || RoleTokens.Contains(text);

    public string SystemSlot { get; internal init; } = ContentPlaceholder;
    public string UserSlot { get; internal init; } = ContentPlaceholder;
    public string AssistantSlot { get; internal init; } = ContentPlaceholder;

    /// <summary>Slot of an assistant turn that calls functions.</summary>
    public string FunctionSlot { get => functionSlot; internal init => functionSlot = value; }

    /// <summary>Header that opens an assistant turn (what <c>add_generation_prompt</c> appends).</summary>
    public string GenerationPrompt { get; internal init; } = "";

    /// <summary>Consecutive tool results form one observation: open, one item slot per result, close.</summary>
    public (string Open, string ItemSlot, string Close) Observation { get; internal init; } = ("", ContentPlaceholder, "");

    /// <summary>Tool prompt and call format; null for templates whose model format has no tools (they are ignored by <see cref="Render"/>).</summary>
    internal ToolFormat? Tools { get => toolFormat; init => toolFormat = value; }

    /// <summary>Whether the template can describe tools to the model (and write its calls); see <see cref="WithToolFormat"/>.</summary>
    public bool SupportsTools => toolFormat is not null;

    /// <summary>
    /// What a reply calling a function begins and ends with around the JSON the model writes (the arguments when
    /// <paramref name="function"/> is named, else the whole <c>{"name", "arguments"}</c> object), for tool formats
    /// that write calls so (Qwen's <c>&lt;tool_call&gt;</c>); null for the others.
    /// </summary>
    public (string Before, string After)? ToolCallAround(string? function) => toolFormat?.CallAround(function);

    private string? boundEos;
    private string? defaultSystem;
    private string functionSlot = ContentPlaceholder;
    private ToolFormat? toolFormat;
    private Regex? thoughtPattern;

    /// <summary>
    /// The special-token texts the template writes, each with what it is: the stop words, the tokens of its prefix
    /// when it writes them by id, the eos its slots write, and the <c>&lt;|...|&gt;</c> role tokens of its prefix,
    /// slots and generation prompt.
    /// </summary>
    public IEnumerable<(string Text, string Role)> Markers()
    {
        foreach (string word in StopWords) yield return (word, "stop word");
        foreach (string token in PrefixTokens) yield return (token, "prefix token");
        if (EosToken is { } eos && (AssistantSlot.Contains(EosPlaceholder) || FunctionSlot.Contains(EosPlaceholder))) yield return (eos, "eos token");
        string written = string.Concat(Prefix, SystemSlot, UserSlot, AssistantSlot, FunctionSlot, GenerationPrompt,
            Observation.Open, Observation.ItemSlot, Observation.Close);
        foreach (string marker in RoleToken().Matches(written).Select(m => m.Value).Distinct(StringComparer.Ordinal))
            yield return (marker, "role token");
    }

    [GeneratedRegex(@"<\|[^|<>\s]+\|>")]
    private static partial Regex RoleToken();

    /// <summary>A copy whose default system text is <paramref name="defaultSystem"/> (LLaMA-Factory's <c>default_system</c> argument; "" = none).</summary>
    public ChatTemplate WithDefaultSystem(string defaultSystem)
    {
        var copy = (ChatTemplate)MemberwiseClone();
        copy.defaultSystem = defaultSystem;
        return copy;
    }

    /// <summary>
    /// A copy that describes tools and writes calls in the named format (LLaMA-Factory's <c>tool_format</c>: default,
    /// qwen, llama3). As LLaMA-Factory does, the function-call slot then becomes the calls followed by the eos token
    /// (no eos when <see cref="EfficientEos"/>), replacing the template's own function slot.
    /// </summary>
    public ChatTemplate WithToolFormat(string name)
    {
        var copy = (ChatTemplate)MemberwiseClone();
        copy.toolFormat = ToolFormat.Named(name);
        copy.functionSlot = EfficientEos ? ContentPlaceholder : ContentPlaceholder + EosPlaceholder;
        return copy;
    }

    /// <summary>A copy whose <c>{{eos_token}}</c> slots write <paramref name="eosToken"/> (the tokenizer's eos).</summary>
    public ChatTemplate WithEosToken(string eosToken)
    {
        var copy = (ChatTemplate)MemberwiseClone();
        copy.boundEos = eosToken;
        return copy;
    }

    /// <summary>
    /// The one set of token ids generation stops at for this template, LLaMA-Factory's <c>get_stop_token_ids</c>: the
    /// eos (<see cref="EosToken"/>: the first stop word when the template replaces the eos, else the tokenizer's it
    /// was bound to), then the stop words; in that order, each once, those that are not a token left out. Chat and
    /// the API server add it to the model's own eos ids, prediction to the tokenizer's additional special tokens,
    /// export writes it first in generation_config.json's eos_token_id.
    /// </summary>
    public IReadOnlyList<int> StopTokenIds(Tokenizer tokenizer)
    {
        var ids = new List<int>();
        foreach (string word in (EosToken is { } eos ? [eos] : Array.Empty<string>()).Concat(StopWords))
            if (tokenizer.TokenToId(word) is int id && !ids.Contains(id)) ids.Add(id);
        return ids;
    }

    /// <summary>
    /// The one way a conversation becomes prompt ids for generation, shared by chat, the API server and compare:
    /// <see cref="Render"/> with a generation prompt (and the tools JSON array, if any), then <see cref="Encode"/>.
    /// </summary>
    /// <param name="enableThinking">Qwen3's <c>enable_thinking</c> (see <see cref="Render"/>): false asks a thinking template for no reasoning.</param>
    public int[] EncodePrompt(Tokenizer tokenizer, IReadOnlyList<ChatMessage> messages, string? toolsJson = null, bool? enableThinking = null) =>
        Encode(tokenizer, Render(messages, addGenerationPrompt: true, toolsJson, enableThinking));

    /// <summary>
    /// The one way text this template wrote becomes token ids (training's prompts, answers and head, chat, the API
    /// server, compare, <c>check template</c>): the tokenizer's encoding of the text, except for a template with
    /// token elements (<see cref="PrefixTokens"/>, <see cref="RoleTokens"/>), whose text is cut as LLaMA-Factory's
    /// slot lists are: a leading <see cref="Prefix"/> becomes its tokens' ids, each role token one id, and each run
    /// of text between them is encoded on its own, with a newline that opens the run (the slot's newline after a
    /// role token, or the one an answer starts with) encoded apart from the content after it.
    /// </summary>
    /// <exception cref="InvalidDataException">A token element that is not a token of <paramref name="tokenizer"/>.</exception>
    public int[] Encode(Tokenizer tokenizer, string text)
    {
        if (PrefixTokens.Count == 0 && RoleTokens.Count == 0)
            return tokenizer.Encode(text);

        var ids = new List<int>();
        int pos = 0;
        if (Prefix.Length > 0 && text.StartsWith(Prefix, StringComparison.Ordinal))
        {
            foreach (string token in PrefixTokens) ids.Add(TokenId(tokenizer, token));
            pos = Prefix.Length;
        }
        while (pos < text.Length)
        {
            var (at, role) = NextRoleToken(text, pos);
            EncodeRun(tokenizer, text[pos..at], ids);
            if (role is null) break;
            ids.Add(TokenId(tokenizer, role));
            pos = at + role.Length;
        }
        return ids.ToArray();
    }

    private (int At, string? Token) NextRoleToken(string text, int from)
    {
        (int At, string? Token) next = (text.Length, null);
        foreach (string token in RoleTokens)
        {
            int at = text.IndexOf(token, from, StringComparison.Ordinal);
            if (at >= 0 && at < next.At) next = (at, token);
        }
        return next;
    }

    private static void EncodeRun(Tokenizer tokenizer, string run, List<int> ids)
    {
        if (run.StartsWith('\n'))
        {
            ids.AddRange(tokenizer.Encode("\n"));
            run = run[1..];
        }
        if (run.Length > 0) ids.AddRange(tokenizer.Encode(run));
    }

    private int TokenId(Tokenizer tokenizer, string token) =>
        tokenizer.TokenToId(token) ?? throw new InvalidDataException(
            $"the {Name} template's token '{token}' is not a token of this model's tokenizer; use the model's own template");

    /// <summary>
    /// Renders a whole conversation as the model's chat template does (transformers' <c>apply_chat_template</c> with
    /// <c>tokenize=False</c>): a first system message replaces the default system text (even when empty), a
    /// non-empty tools list adds the tool prompt to the system block, consecutive tool messages share one
    /// observation block, and for <see cref="Thinking"/> templates reasoning is shown only after the last user query.
    /// </summary>
    /// <param name="toolsJson">JSON array of tools as given to the model (null, "null" or "[]" = no tools).</param>
    /// <param name="enableThinking">Qwen3's <c>enable_thinking</c>; only an explicit false changes the output.</param>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? toolsJson = null, bool? enableThinking = null)
    {
        if (messages.Count == 0)
            throw new ArgumentException("A conversation needs at least one message.", nameof(messages));

        var tools = ParseTools(toolsJson);
        var sb = new StringBuilder(Prefix);
        var hasSystemMessage = messages[0].Role == ChatRole.System;
        var system = hasSystemMessage ? messages[0].Content : DefaultSystem;
        if (tools.Count > 0 && Tools is not null)
            sb.Append(Apply(SystemSlot, Tools.SystemWithTools(system, tools, Dialect.Jinja)));
        else if (system is not null)
            sb.Append(Apply(SystemSlot, system));

        var lastQueryIndex = Thinking ? LastQueryIndex(messages) : messages.Count - 1;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            switch (message.Role)
            {
                case ChatRole.System when i > 0:
                    sb.Append(Apply(SystemSlot, message.Content));
                    break;
                case ChatRole.User:
                    sb.Append(Apply(UserSlot, message.Content));
                    break;
                case ChatRole.Assistant:
                    sb.Append(GenerationPrompt).Append(RenderAssistant(message, i > lastQueryIndex, i == messages.Count - 1));
                    break;
                case ChatRole.Tool:
                    if (i == 0 || messages[i - 1].Role != ChatRole.Tool)
                        sb.Append(Observation.Open);
                    sb.Append(Apply(Observation.ItemSlot, message.Content));
                    if (i == messages.Count - 1 || messages[i + 1].Role != ChatRole.Tool)
                        sb.Append(Observation.Close);
                    break;
            }
        }

        if (addGenerationPrompt)
        {
            sb.Append(GenerationPrompt);
            if (Thinking && enableThinking == false)
                sb.Append(ThoughtWords.Open).Append(ThoughtWords.Close);
        }
        return sb.ToString();
    }

    /// <summary>
    /// LLaMA-Factory's <c>encode_multiturn</c> as text: one (prompt, answer) pair per user/assistant turn, to be
    /// tokenized separately. The first prompt carries the prefix and the system block, every prompt ends with the
    /// assistant header, every answer with the assistant slot's end. For <see cref="Thinking"/> templates thinking
    /// is enabled (LLaMA-Factory's default): an answer without a thought gets an empty one.
    /// </summary>
    /// <param name="messages">
    /// Alternating prompt and answer messages: a user message or a run of tool messages, then an assistant message
    /// (with or without tool calls). A leading system message is used as <paramref name="system"/>.
    /// </param>
    /// <param name="system">System text; null or empty means the template's default system text.</param>
    /// <param name="toolsJson">The dataset's tools JSON text; any non-empty text (even "[]") emits a system block.</param>
    public IReadOnlyList<(string Prompt, string Answer)> EncodePairs(IReadOnlyList<ChatMessage> messages, string? system = null, string? toolsJson = null) =>
        EncodePairs(messages, system, toolsJson, enableThinking: true);

    /// <summary>
    /// <see cref="EncodePairs(IReadOnlyList{ChatMessage}, string?, string?)"/> with LLaMA-Factory's
    /// <c>enable_thinking</c> for <see cref="Thinking"/> templates: false removes every thought and puts an empty one
    /// at the end of each prompt instead, so it is not trained.
    /// </summary>
    public IReadOnlyList<(string Prompt, string Answer)> EncodePairs(IReadOnlyList<ChatMessage> messages, string? system, string? toolsJson, bool enableThinking)
    {
        var turns = EncodeTurns(messages, system, toolsJson, enableThinking);
        var pairs = turns.Pairs.ToList();
        pairs[0] = (turns.Head + pairs[0].Prompt, pairs[0].Answer);
        return pairs;
    }

    /// <summary>
    /// The texts of <see cref="EncodePairs(IReadOnlyList{ChatMessage}, string?, string?, bool)"/> with the head (prefix and
    /// system block) kept apart from the first prompt, because LLaMA-Factory tokenizes each slot on its own: the first
    /// prompt's ids are the head's encoding followed by the first user block's encoding.
    /// </summary>
    /// <param name="oneTurn">
    /// LLaMA-Factory's <c>encode_oneturn</c> (the prompt is everything before the last answer, as the pairwise,
    /// feedback and unsupervised processors encode it): for <see cref="Thinking"/> templates the earlier answers lose
    /// their thoughts and get no empty one (its ReasoningTemplate without preserve_thinking); only the last answer is
    /// written as <c>encode_multiturn</c> writes every answer.
    /// </param>
    public TurnTexts EncodeTurns(IReadOnlyList<ChatMessage> messages, string? system, string? toolsJson, bool enableThinking = true, bool oneTurn = false)
    {
        var start = 0;
        if (messages.Count > 0 && messages[0].Role == ChatRole.System)
        {
            if (system is not null)
                throw new ArgumentException("Give the system text either as the first message or as the system argument, not both.", nameof(system));
            system = messages[0].Content;
            start = 1;
        }

        var pairs = new List<(string Prompt, string Answer)>();
        var i = start;
        while (i < messages.Count)
        {
            var prompt = PromptText(messages, ref i);
            if (i >= messages.Count || messages[i].Role != ChatRole.Assistant)
                throw new ArgumentException(
                    $"Message {i} must be an assistant answer: turns alternate user (or tool results) and assistant, and the conversation ends with an assistant message.",
                    nameof(messages));
            var answerMessage = messages[i++];
            var (answer, emptyThoughtForPrompt) = AnswerText(answerMessage, enableThinking, earlierAnswerOfOneTurn: oneTurn && i < messages.Count);
            pairs.Add((prompt + emptyThoughtForPrompt, answer));
        }
        if (pairs.Count == 0)
            throw new ArgumentException("A conversation needs at least one user/assistant turn.", nameof(messages));

        var systemText = string.IsNullOrEmpty(system) ? DefaultSystem ?? "" : system;
        var head = new StringBuilder(Prefix);
        if (systemText.Length > 0 || !string.IsNullOrEmpty(toolsJson))
        {
            var tools = ParseTools(toolsJson);
            if (tools.Count > 0 && Tools is null)
                throw new ArgumentException($"Template '{Name}' has no tool format; tools cannot be given.", nameof(toolsJson));
            head.Append(Apply(SystemSlot, tools.Count > 0
                ? Tools!.SystemWithTools(systemText.Length > 0 ? systemText : null, tools, Dialect.LlamaFactory)
                : systemText));
        }
        return new TurnTexts(head.ToString(), pairs);
    }

    private string PromptText(IReadOnlyList<ChatMessage> messages, ref int i)
    {
        var message = messages[i];
        if (message.Role == ChatRole.User)
        {
            i++;
            return Apply(UserSlot, message.Content) + GenerationPrompt;
        }
        if (message.Role != ChatRole.Tool)
            throw new ArgumentException(
                $"Message {i} ({message.Role}) must be a user message or a tool result: turns alternate user (or tool results) and assistant.",
                nameof(messages));

        var sb = new StringBuilder(Observation.Open);
        for (; i < messages.Count && messages[i].Role == ChatRole.Tool; i++)
            sb.Append(Apply(Observation.ItemSlot, messages[i].Content));
        return sb.Append(Observation.Close).Append(GenerationPrompt).ToString();
    }

    /// <param name="earlierAnswerOfOneTurn">An answer before the last one in <c>encode_oneturn</c>: its thought is removed and no empty one added.</param>
    private (string Answer, string EmptyThoughtForPrompt) AnswerText(ChatMessage message, bool enableThinking, bool earlierAnswerOfOneTurn = false)
    {
        var content = message.Content;
        if (Thinking && message.ReasoningContent is not null)
            content = ThoughtWords.Open + message.ReasoningContent + ThoughtWords.Close + content;
        if (Thinking && (!enableThinking || earlierAnswerOfOneTurn))
            content = ThoughtPattern().Replace(content, "").TrimStart('\n');

        string answer;
        if (message.ToolCalls is { Count: > 0 } calls)
        {
            if (Tools is null)
                throw new ArgumentException($"Template '{Name}' has no tool format; an assistant message cannot call tools.", nameof(message));
            // LLaMA-Factory lifts a thought out of a function message and puts it in front of the calls.
            var thought = Thinking ? ThoughtPattern().Match(content) : Match.Empty;
            var text = thought.Success ? content.Remove(thought.Index, thought.Length) : content;
            var callsText = Tools.FormatCalls(calls, Dialect.LlamaFactory);
            answer = Apply(FunctionSlot, thought.Value + (text.Length > 0 ? text + "\n" : "") + callsText);
        }
        else
        {
            answer = Apply(AssistantSlot, content);
        }

        var hasThought = content.Contains(ThoughtWords.Open.Trim(), StringComparison.Ordinal)
            || content.Contains(ThoughtWords.Close.Trim(), StringComparison.Ordinal);
        if (!Thinking || hasThought || earlierAnswerOfOneTurn)
            return (answer, "");
        var emptyThought = ThoughtWords.Open + ThoughtWords.Close;
        return enableThinking ? (emptyThought + answer, "") : (answer, emptyThought);
    }

    /// <summary>Body of an assistant turn as Qwen's Jinja templates write it (after the assistant header).</summary>
    private string RenderAssistant(ChatMessage message, bool afterLastQuery, bool isLast)
    {
        var content = message.Content;
        var displayed = content;
        if (Thinking)
        {
            var reasoning = "";
            if (message.ReasoningContent is not null)
            {
                reasoning = message.ReasoningContent;
            }
            else if (content.Contains("</think>", StringComparison.Ordinal))
            {
                var parts = content.Split("</think>");
                content = parts[^1].TrimStart('\n');
                reasoning = parts[0].TrimEnd('\n').Split("<think>")[^1].TrimStart('\n');
            }

            // Thoughts of earlier rounds are dropped; after the last user query the final answer always shows its
            // (possibly empty) thought and intermediate tool-calling answers show a non-empty one.
            displayed = afterLastQuery && (isLast || reasoning.Length > 0)
                ? ThoughtWords.Open + reasoning.Trim('\n') + ThoughtWords.Close + content.TrimStart('\n')
                : content;
        }

        if (message.ToolCalls is { Count: > 0 } calls && Tools is not null)
            return Apply(FunctionSlot, displayed + (content.Length > 0 ? "\n" : "") + Tools.FormatCalls(calls, Dialect.Jinja));
        return Apply(AssistantSlot, displayed);
    }

    /// <summary>
    /// Index of the last user message that is a real query (not a tool response pasted as user text); thoughts are
    /// shown only for assistant messages after it. Without one, no assistant message qualifies.
    /// </summary>
    private static int LastQueryIndex(IReadOnlyList<ChatMessage> messages)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            var m = messages[i];
            if (m.Role == ChatRole.User
                && !(m.Content.StartsWith("<tool_response>", StringComparison.Ordinal) && m.Content.EndsWith("</tool_response>", StringComparison.Ordinal)))
                return i;
        }
        return messages.Count - 1;
    }

    private string Apply(string slot, string content)
    {
        if (slot.Contains(EosPlaceholder, StringComparison.Ordinal))
        {
            var eos = EosToken ?? throw new InvalidOperationException(
                $"Template '{Name}' writes the tokenizer's eos token; bind it first with WithEosToken(...).");
            slot = slot.Replace(EosPlaceholder, eos, StringComparison.Ordinal);
        }
        var at = slot.IndexOf(ContentPlaceholder, StringComparison.Ordinal);
        return slot[..at] + content + slot[(at + ContentPlaceholder.Length)..];
    }

    private static List<JsonElement> ParseTools(string? toolsJson)
    {
        if (string.IsNullOrWhiteSpace(toolsJson))
            return [];
        try
        {
            using var doc = JsonDocument.Parse(toolsJson);
            return doc.RootElement.ValueKind switch
            {
                JsonValueKind.Null => [],
                JsonValueKind.Array => doc.RootElement.EnumerateArray().Select(t => t.Clone()).ToList(),
                _ => throw new ArgumentException("toolsJson must be a JSON array of tools.", nameof(toolsJson)),
            };
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"toolsJson is not valid JSON: {e.Message}", nameof(toolsJson), e);
        }
    }

    private Regex ThoughtPattern() =>
        thoughtPattern ??= new Regex(Regex.Escape(ThoughtWords.Open) + "(.*?)" + Regex.Escape(ThoughtWords.Close), RegexOptions.Singleline);
}
