using System.Text.Json;
using SharpTune.IO;
using SharpTune.Templates;

namespace SharpTune.Data;

/// <summary>
/// LLaMA-Factory's <c>AlpacaDatasetConverter</c> and <c>SharegptDatasetConverter</c> for supervised data: one raw
/// record to an <see cref="AlignedExample"/>. Where LLaMA-Factory would drop a record with a warning (or fail later
/// while encoding it), this throws <see cref="InvalidRecordException"/> naming the field, so the loader can report it.
/// A column the entry maps but the record lacks counts as null, as Hugging Face's json loader fills it.
/// </summary>
public static class DatasetConverter
{
    /// <exception cref="InvalidRecordException">The record cannot be used; the message names the field.</exception>
    public static AlignedExample Convert(DatasetEntry entry, JsonElement record)
    {
        RequireObject(record);
        return entry.Formatting == DatasetFormatting.Alpaca ? ConvertAlpaca(entry, record) : ConvertSharegpt(entry, record);
    }

    /// <summary>
    /// A record for continued pretraining (stage pt), in LLaMA-Factory's aligned form: a single user message whose
    /// content is the text its pretrain processor reads (<c>_prompt[0].content</c>): for alpaca the prompt and query
    /// columns joined by a newline (the first history prompt when the record has history), for sharegpt the first
    /// non-system message. No response is needed.
    /// </summary>
    /// <exception cref="InvalidRecordException">The record cannot be used; the message names the field.</exception>
    public static AlignedExample ConvertPlainText(DatasetEntry entry, JsonElement record)
    {
        RequireObject(record);
        if (entry.Formatting == DatasetFormatting.Sharegpt)
            return new AlignedExample([Convert(entry, record).Messages[0]], null, null);
        if (Value(record, entry.History) is { ValueKind: JsonValueKind.Array } history && history.GetArrayLength() > 0)
        {
            var first = history[0];
            if (first.ValueKind != JsonValueKind.Array || first.GetArrayLength() != 2 || first[0].ValueKind != JsonValueKind.String)
                throw new InvalidRecordException($"'{entry.History}'[0] must be a [prompt, response] pair of strings");
            return new AlignedExample([new ChatMessage(ChatRole.User, first[0].GetString()!)], null, null);
        }
        string text = string.Join("\n", new[] { OptionalString(record, entry.Prompt), OptionalString(record, entry.Query) }
            .Where(t => !string.IsNullOrEmpty(t)));
        return new AlignedExample([new ChatMessage(ChatRole.User, text)], null, null);
    }

    /// <summary>
    /// A preference record (stages rm and dpo), as LLaMA-Factory's converters read a <c>ranking</c> dataset: the
    /// prompt messages (alpaca: history and prompt/query; sharegpt: a conversation that ends with a user or
    /// observation message) followed by the chosen answer, and the same followed by the rejected answer (alpaca:
    /// strings; sharegpt: message objects with an assistant or function-call role).
    /// </summary>
    /// <exception cref="InvalidRecordException">The record cannot be used; the message names the field.</exception>
    public static AlignedPair ConvertPairwise(DatasetEntry entry, JsonElement record)
    {
        RequireObject(record);
        string chosenColumn = entry.Chosen!, rejectedColumn = entry.Rejected!;
        if (entry.Formatting == DatasetFormatting.Alpaca)
        {
            var prompt = AlpacaPrompt(entry, record);
            string chosenText = AnswerString(record, chosenColumn), rejectedText = AnswerString(record, rejectedColumn);
            string? system = OptionalString(record, entry.System), tools = ToolsText(record, entry.Tools);
            return new AlignedPair(
                new AlignedExample([.. prompt, new ChatMessage(ChatRole.Assistant, chosenText)], system, tools),
                new AlignedExample([.. prompt, new ChatMessage(ChatRole.Assistant, rejectedText)], system, tools));
        }

        var (messages, sharegptSystem, raw) = SharegptMessages(entry, record);
        string column = entry.Messages!;
        if (messages.Count == 0)
            throw new InvalidRecordException(raw.Count == 0 ? $"'{column}' has no messages" : $"'{column}' has only a {entry.SystemTag} message");
        if (messages.Count % 2 == 0)
            throw new InvalidRecordException(
                $"'{column}' ends with a {MessageText.Quote(raw[^1].Role)} message; in a preference record it ends with the prompt " +
                $"({string.Join(" or ", PromptTags(entry))}) and the answers are '{chosenColumn}' and '{rejectedColumn}'");
        var chosen = AnswerMessage(entry, record, chosenColumn);
        var rejected = AnswerMessage(entry, record, rejectedColumn);
        string? sharegptTools = ToolsText(record, entry.Tools);
        return new AlignedPair(new AlignedExample([.. messages, chosen], sharegptSystem, sharegptTools),
            new AlignedExample([.. messages, rejected], sharegptSystem, sharegptTools));
    }

    /// <summary>
    /// A KTO record (stage kto): the record read as for supervised fine-tuning (<see cref="Convert"/>: it ends with
    /// its one answer) and its boolean <c>kto_tag</c>, true when that answer is desirable.
    /// </summary>
    /// <exception cref="InvalidRecordException">The record cannot be used; the message names the field.</exception>
    public static AlignedFeedback ConvertFeedback(DatasetEntry entry, JsonElement record)
    {
        var example = Convert(entry, record);
        string column = entry.KtoTag!;
        bool desirable = Value(record, column) switch
        {
            null => throw new InvalidRecordException($"'{column}' is missing (the KTO tag: true when the answer is desirable, false when it is not)"),
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            var value => throw new InvalidRecordException($"'{column}' (the KTO tag) must be true or false, got {JsonKinds.Describe(value.Value)}"),
        };
        return new AlignedFeedback(example, desirable);
    }

    /// <summary>
    /// A prompt for stage ppo, which generates its own answers (LLaMA-Factory's unsupervised processor): the record as
    /// <see cref="Convert"/> reads it, except that an alpaca record without a response column (or value) ends with an
    /// empty answer, as LLaMA-Factory's converter leaves such a record without a response.
    /// </summary>
    /// <exception cref="InvalidRecordException">The record cannot be used; the message names the field.</exception>
    public static AlignedExample ConvertPrompt(DatasetEntry entry, JsonElement record)
    {
        RequireObject(record);
        if (entry.Formatting == DatasetFormatting.Sharegpt || Value(record, entry.Response) is not null)
            return Convert(entry, record);
        var prompt = AlpacaPrompt(entry, record);
        return new AlignedExample([.. prompt, new ChatMessage(ChatRole.Assistant, "")], OptionalString(record, entry.System), ToolsText(record, entry.Tools));
    }

    private static void RequireObject(JsonElement record)
    {
        if (record.ValueKind != JsonValueKind.Object)
            throw new InvalidRecordException($"a record must be a JSON object, got {JsonKinds.Describe(record)}");
    }

    private static AlignedExample ConvertAlpaca(DatasetEntry entry, JsonElement record)
    {
        var messages = AlpacaPrompt(entry, record);
        messages.Add(new ChatMessage(ChatRole.Assistant, AnswerString(record, entry.Response!)));
        return new AlignedExample(messages, OptionalString(record, entry.System), ToolsText(record, entry.Tools));
    }

    /// <summary>An alpaca record's prompt messages: the history's turns, then the prompt and query columns joined by a newline.</summary>
    private static List<ChatMessage> AlpacaPrompt(DatasetEntry entry, JsonElement record)
    {
        var messages = new List<ChatMessage>();
        if (Value(record, entry.History) is { } history)
        {
            if (history.ValueKind != JsonValueKind.Array)
                throw new InvalidRecordException($"'{entry.History}' must be a list of [prompt, response] pairs, got {JsonKinds.Describe(history)}");
            int i = 0;
            foreach (var pair in history.EnumerateArray())
            {
                if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2
                    || pair[0].ValueKind != JsonValueKind.String || pair[1].ValueKind != JsonValueKind.String)
                    throw new InvalidRecordException($"'{entry.History}'[{i}] must be a [prompt, response] pair of strings");
                messages.Add(new ChatMessage(ChatRole.User, pair[0].GetString()!));
                messages.Add(new ChatMessage(ChatRole.Assistant, pair[1].GetString()!));
                i++;
            }
        }

        var query = new[] { OptionalString(record, entry.Prompt), OptionalString(record, entry.Query) }
            .Where(text => !string.IsNullOrEmpty(text));
        messages.Add(new ChatMessage(ChatRole.User, string.Join("\n", query)));
        return messages;
    }

    /// <summary>An alpaca answer column: a string that is not empty.</summary>
    private static string AnswerString(JsonElement record, string column)
    {
        string answer = Value(record, column) switch
        {
            null => throw new InvalidRecordException($"'{column}' is missing"),
            { ValueKind: JsonValueKind.String } value => value.GetString()!,
            var value => throw new InvalidRecordException($"'{column}' must be a string, got {JsonKinds.Describe(value.Value)}"),
        };
        if (answer.Length == 0)
            throw new InvalidRecordException($"'{column}' is empty");
        return answer;
    }

    private static AlignedExample ConvertSharegpt(DatasetEntry entry, JsonElement record)
    {
        string column = entry.Messages!;
        var (messages, system, raw) = SharegptMessages(entry, record);
        if (messages.Count == 0)
            throw new InvalidRecordException(raw.Count == 0 ? $"'{column}' has no messages" : $"'{column}' has only a {entry.SystemTag} message");
        if (messages.Count % 2 != 0)
            throw new InvalidRecordException(
                $"'{column}' ends with a {MessageText.Quote(raw[^1].Role)} message; the last message must be the answer ({string.Join(" or ", AnswerTags(entry))})");
        if (raw[^1].Content.Length == 0)
            throw new InvalidRecordException($"'{column}'[{raw.Count - 1}] (the response) is empty");

        return new AlignedExample(messages, system, ToolsText(record, entry.Tools));
    }

    private static string[] PromptTags(DatasetEntry entry) => new[] { entry.UserTag, entry.ObservationTag }.OfType<string>().ToArray();

    private static string[] AnswerTags(DatasetEntry entry) => new[] { entry.AssistantTag, entry.FunctionTag }.OfType<string>().ToArray();

    /// <summary>
    /// A sharegpt record's messages after an optional leading system message (whose text becomes the system, else
    /// the system column's), checked to alternate prompt and answer roles from a prompt on; the raw list is returned
    /// too, for messages about its end.
    /// </summary>
    private static (List<ChatMessage> Messages, string? System, List<(string Role, string Content)> Raw) SharegptMessages(DatasetEntry entry, JsonElement record)
    {
        string column = entry.Messages!;
        var list = Value(record, column) ?? throw new InvalidRecordException($"'{column}' is missing");
        if (list.ValueKind != JsonValueKind.Array)
            throw new InvalidRecordException($"'{column}' must be a list of messages, got {JsonKinds.Describe(list)}");
        var raw = new List<(string Role, string Content)>();
        int index = 0;
        foreach (var message in list.EnumerateArray())
            raw.Add(ReadMessage(entry, $"'{column}'[{index++}]", message));

        int start = 0;
        string? system;
        if (entry.SystemTag is not null && raw.Count > 0 && raw[0].Role == entry.SystemTag)
        {
            system = raw[0].Content;
            start = 1;
        }
        else
        {
            system = OptionalString(record, entry.System);
        }

        string[] promptTags = PromptTags(entry);
        string[] answerTags = AnswerTags(entry);
        var messages = new List<ChatMessage>();
        for (int i = start; i < raw.Count; i++)
        {
            var (role, content) = raw[i];
            bool isPrompt = (i - start) % 2 == 0;
            if (!(isPrompt ? promptTags : answerTags).Contains(role))
                throw new InvalidRecordException(
                    $"'{column}'[{i}] has role {MessageText.Quote(role)} where a {string.Join(" or ", isPrompt ? promptTags : answerTags)} message belongs " +
                    $"(after an optional first {entry.SystemTag ?? "system"} message, messages alternate {string.Join("|", promptTags)} and {string.Join("|", answerTags)})");
            messages.Add(role == entry.UserTag ? new ChatMessage(ChatRole.User, content)
                : role == entry.ObservationTag ? new ChatMessage(ChatRole.Tool, content)
                : AnswerChatMessage(entry, role, content, $"'{column}'[{i}]"));
        }
        return (messages, system, raw);
    }

    /// <summary>An answer message of the sharegpt tags: an assistant message, or the function call a function-call message holds.</summary>
    private static ChatMessage AnswerChatMessage(DatasetEntry entry, string role, string content, string where) =>
        role == entry.AssistantTag ? new ChatMessage(ChatRole.Assistant, content) : new ChatMessage(ChatRole.Assistant, "", FunctionCalls(content, where));

    /// <summary>A sharegpt preference record's chosen or rejected column: one answer message object, not empty.</summary>
    private static ChatMessage AnswerMessage(DatasetEntry entry, JsonElement record, string column)
    {
        string where = $"'{column}'";
        var message = Value(record, column) ?? throw new InvalidRecordException($"{where} is missing");
        var (role, content) = ReadMessage(entry, where, message);
        string[] answerTags = AnswerTags(entry);
        if (!answerTags.Contains(role))
            throw new InvalidRecordException($"{where} has role {MessageText.Quote(role)}; an answer has role {string.Join(" or ", answerTags)}");
        if (content.Length == 0)
            throw new InvalidRecordException($"{where} is empty");
        return AnswerChatMessage(entry, role, content, where);
    }

    private static (string Role, string Content) ReadMessage(DatasetEntry entry, string where, JsonElement message)
    {
        if (message.ValueKind != JsonValueKind.Object)
            throw new InvalidRecordException($"{where} must be an object, got {JsonKinds.Describe(message)}");
        string Field(string key) => Value(message, key) switch
        {
            null => throw new InvalidRecordException($"{where} has no '{key}'"),
            { ValueKind: JsonValueKind.String } value => value.GetString()!,
            var value => throw new InvalidRecordException($"{where}: '{key}' must be a string, got {JsonKinds.Describe(value.Value)}"),
        };
        return (Field(entry.RoleTag!), Field(entry.ContentTag!));
    }

    /// <summary>
    /// A function-call message's value as LLaMA-Factory's FunctionFormatter reads it: a JSON object
    /// <c>{"name", "arguments"}</c> or a list of them (parallel calls); only name and arguments are kept.
    /// </summary>
    private static List<ToolCall> FunctionCalls(string content, string where)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(content);
        }
        catch (JsonException e)
        {
            throw new InvalidRecordException($"{where}: the function call is not valid JSON ({JsonKinds.Reason(e)})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            var items = root.ValueKind == JsonValueKind.Array ? root.EnumerateArray().ToList() : [root];
            var calls = new List<ToolCall>();
            foreach (var call in items)
            {
                if (call.ValueKind != JsonValueKind.Object)
                    throw new InvalidRecordException($"{where}: a function call must be a JSON object {{\"name\", \"arguments\"}} (or a list of them), got {JsonKinds.Describe(call)}");
                if (Value(call, "name") is not { ValueKind: JsonValueKind.String } name)
                    throw new InvalidRecordException($"{where}: a function call has no 'name' string");
                if (!call.TryGetProperty("arguments", out var arguments))
                    throw new InvalidRecordException($"{where}: function call {MessageText.Quote(name.GetString()!)} has no 'arguments'");
                calls.Add(new ToolCall(name.GetString()!, arguments.GetRawText()));
            }
            if (calls.Count == 0)
                throw new InvalidRecordException($"{where}: the function call list is empty");
            return calls;
        }
    }

    /// <summary>The tools column as JSON text: a string holding a JSON list of tool objects, or such a list itself.</summary>
    private static string? ToolsText(JsonElement record, string? column)
    {
        if (Value(record, column) is not { } value)
            return null;
        string text;
        if (value.ValueKind == JsonValueKind.String)
        {
            text = value.GetString()!;
            if (text.Length == 0)
                return text;
        }
        else if (value.ValueKind == JsonValueKind.Array)
        {
            text = value.GetRawText();
        }
        else
        {
            throw new InvalidRecordException($"'{column}' must be a JSON string holding a list of tools, got {JsonKinds.Describe(value)}");
        }

        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new InvalidRecordException($"'{column}' must hold a JSON list of tools, got {JsonKinds.Describe(doc.RootElement)}");
            int i = 0;
            foreach (var tool in doc.RootElement.EnumerateArray())
            {
                if (tool.ValueKind != JsonValueKind.Object)
                    throw new InvalidRecordException($"'{column}'[{i}] must be a tool object, got {JsonKinds.Describe(tool)}");
                i++;
            }
        }
        catch (JsonException e)
        {
            throw new InvalidRecordException($"'{column}' is not valid JSON ({JsonKinds.Reason(e)})");
        }
        return text;
    }

    private static string? OptionalString(JsonElement record, string? column) => Value(record, column) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        var value => throw new InvalidRecordException($"'{column}' must be a string, got {JsonKinds.Describe(value.Value)}"),
    };

    /// <summary>The value of a mapped column; null when the column is unmapped, absent from the record or JSON null.</summary>
    private static JsonElement? Value(JsonElement obj, string? key) =>
        key is not null && obj.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
}
