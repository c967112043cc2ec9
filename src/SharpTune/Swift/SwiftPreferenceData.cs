using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data.Cleaning;

namespace SharpTune.Swift;

/// <summary>What a <c>swift rlhf</c> type trains on: preference pairs (dpo, orpo, simpo, rm), tagged answers (kto) or prompts (ppo).</summary>
public enum SwiftRlhfData { Pairs, Tagged, Prompts }

/// <summary>
/// ms-swift's RLHF dataset files read as its preprocessors read them, written in LLaMA-Factory's alpaca layout for
/// SharpTune's preference stages. Which preprocessor reads a file is decided by the columns of the whole file (a JSON
/// Lines file is one table whose columns are every key of every record), as ms-swift's AutoPreprocessor decides it:
/// <c>messages</c> (or <c>conversation</c>/<c>conversations</c>) for MessagesPreprocessor, else <c>instruction</c>
/// with <c>input</c> for AlpacaPreprocessor, else ResponsePreprocessor's <c>query</c>/<c>response</c> and their
/// aliases. Column names match case-insensitively, and two aliases of one column in the same file cancel each other
/// (ms-swift's safe_rename_columns), leaving only a column already named as the standard one. A preference record
/// adds <c>rejected_response</c> (a string different from the chosen answer) or <c>rejected_messages</c> (the same
/// user turns, the differing assistant turn being the rejected answer); a KTO record adds <c>label</c> (true when the
/// answer is desirable). Every refusal names the file, record and field.
/// </summary>
public static class SwiftPreferenceData
{
    private static readonly string[] MessageColumns = ["messages", "conversation", "conversations"];
    private static readonly string[] SystemColumns = ["system", "system_prompt"];
    private static readonly string[] QueryColumns = ["query", "prompt", "input", "instruction", "question", "problem"];
    private static readonly string[] ResponseColumns = ["response", "answer", "output", "targets", "target", "answer_key", "answers", "solution", "text", "completion", "content"];
    private static readonly string[] UserRoles = ["user", "human"];
    private static readonly string[] AssistantRoles = ["assistant", "gpt", "bot"];

    /// <summary>One ms-swift record as a prompt (system, earlier turns, the last query) and its answers.</summary>
    private sealed record Conversation(string? System, List<(string Query, string Response)> History, string Query, string? Response);

    /// <summary>The records of <paramref name="path"/> in LLaMA-Factory's alpaca layout, and the dataset_info.json entry registering them as <paramref name="fileName"/>.</summary>
    /// <exception cref="InvalidDataException">A record ms-swift would not read, or without what <paramref name="kind"/> needs; the message names file, record and field.</exception>
    public static (JsonArray Records, JsonObject Entry) Convert(string path, SwiftRlhfData kind, string fileName)
    {
        var file = DatasetRecordFile.Read(path);
        var columns = new HashSet<string>(StringComparer.Ordinal);
        var parsed = new List<(DatasetRecord Record, JsonElement Root, JsonDocument Document)>();
        foreach (var record in file.Records)
        {
            var document = record.Parse();
            parsed.Add((record, document.RootElement, document));
            foreach (var property in document.RootElement.EnumerateObject()) columns.Add(property.Name.ToLowerInvariant());
        }
        try
        {
            bool messages = MessageColumns.Any(columns.Contains);
            string? system = Column(columns, "system", SystemColumns);
            string? query = messages ? null : columns.Contains("instruction") && columns.Contains("input") ? "instruction" : Column(columns, "query", QueryColumns);
            string? response = messages ? null : Column(columns, "response", ResponseColumns);
            bool alpaca = !messages && columns.Contains("instruction") && columns.Contains("input");

            var records = new JsonArray();
            bool anySystem = false, anyHistory = false;
            foreach (var (record, root, _) in parsed)
            {
                string Where(string field) => $"{record.Location}: '{field}'";
                var conversation = messages ? FromMessages(root, Where, kind)
                    : FromColumns(root, Where, kind, system, alpaca ? null : query, response, alpaca);
                var output = new JsonObject { ["instruction"] = conversation.Query };
                switch (kind)
                {
                    case SwiftRlhfData.Pairs:
                        output["chosen"] = conversation.Response;
                        output["rejected"] = Rejected(root, Where, conversation);
                        break;
                    case SwiftRlhfData.Tagged:
                        output["output"] = conversation.Response;
                        output["label"] = Property(root, "label") switch
                        {
                            { ValueKind: JsonValueKind.True } => true,
                            { ValueKind: JsonValueKind.False } => false,
                            null => throw new InvalidDataException($"{Where("label")} is missing (a KTO record's label: true when the answer is desirable, false when it is not)"),
                            var other => throw new InvalidDataException($"{Where("label")} must be true or false, got {other.Value.ValueKind.ToString().ToLowerInvariant()}"),
                        };
                        break;
                }
                if (conversation.History.Count > 0)
                {
                    output["history"] = new JsonArray(conversation.History.Select(turn => (JsonNode)new JsonArray(turn.Query, turn.Response)).ToArray());
                    anyHistory = true;
                }
                if (conversation.System is { } s)
                {
                    output["system"] = s;
                    anySystem = true;
                }
                records.Add(output);
            }
            if (records.Count == 0) throw new InvalidDataException($"{path}: no records");

            var entryColumns = new JsonObject { ["prompt"] = "instruction" };
            switch (kind)
            {
                case SwiftRlhfData.Pairs:
                    entryColumns["chosen"] = "chosen";
                    entryColumns["rejected"] = "rejected";
                    break;
                case SwiftRlhfData.Tagged:
                    entryColumns["response"] = "output";
                    entryColumns["kto_tag"] = "label";
                    break;
                default:
                    entryColumns["response"] = "output";
                    break;
            }
            if (anySystem) entryColumns["system"] = "system";
            if (anyHistory) entryColumns["history"] = "history";
            var entry = new JsonObject { ["file_name"] = fileName, ["formatting"] = "alpaca", ["columns"] = entryColumns };
            if (kind == SwiftRlhfData.Pairs) entry["ranking"] = true;
            return (records, entry);
        }
        finally
        {
            foreach (var (_, _, document) in parsed) document.Dispose();
        }
    }

    /// <summary>
    /// The file's column read as <paramref name="standard"/>: its one alias present; with several aliases present
    /// (which ms-swift's safe_rename_columns leaves all unrenamed) the one already named <paramref name="standard"/>, if any.
    /// </summary>
    private static string? Column(HashSet<string> columns, string standard, string[] aliases)
    {
        var present = aliases.Where(columns.Contains).ToList();
        return present.Count == 1 ? present[0] : present.Contains(standard) ? standard : null;
    }

    private static JsonElement? Property(JsonElement record, string lowerName)
    {
        foreach (var property in record.EnumerateObject())
        {
            if (property.Name.Equals(lowerName, StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind != JsonValueKind.Null)
                return property.Value;
        }
        return null;
    }

    private static string? OptionalText(JsonElement record, string? column, Func<string, string> where) => column is null ? null : Property(record, column) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        var value => throw new InvalidDataException($"{where(column)} must be a string, got {value.Value.ValueKind.ToString().ToLowerInvariant()}"),
    };

    /// <summary>ResponsePreprocessor (or AlpacaPreprocessor): system, history of [query, response] pairs, query, response.</summary>
    private static Conversation FromColumns(JsonElement root, Func<string, string> where, SwiftRlhfData kind,
        string? systemColumn, string? queryColumn, string? responseColumn, bool alpaca)
    {
        string? query;
        if (alpaca)
        {
            // AlpacaPreprocessor's concat_inst_input: instruction and input joined by a newline when both are given.
            string? instruction = OptionalText(root, "instruction", where), input = OptionalText(root, "input", where);
            query = !string.IsNullOrEmpty(instruction) && !string.IsNullOrEmpty(input) ? $"{instruction}\n{input}"
                : !string.IsNullOrEmpty(instruction) ? instruction : input;
        }
        else query = OptionalText(root, queryColumn, where);
        string? response = OptionalText(root, responseColumn, where);
        if (query is null)
            throw new InvalidDataException($"{where(queryColumn ?? "query")} is missing (ms-swift reads the prompt from messages, or from one of {string.Join(", ", QueryColumns)})");
        if (response is null && kind != SwiftRlhfData.Prompts)
            throw new InvalidDataException($"{where(responseColumn ?? "response")} is missing (ms-swift reads the chosen answer from one of {string.Join(", ", ResponseColumns)})");

        var history = new List<(string, string)>();
        if (Property(root, "history") is { } h)
        {
            if (h.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{where("history")} must be a list of [query, response] pairs");
            int i = 0;
            foreach (var pair in h.EnumerateArray())
            {
                if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || pair[0].ValueKind != JsonValueKind.String || pair[1].ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{where("history")}[{i}] must be a [query, response] pair of strings");
                history.Add((pair[0].GetString()!, pair[1].GetString()!));
                i++;
            }
        }
        return new Conversation(OptionalText(root, systemColumn, where), history, query, response);
    }

    /// <summary>
    /// MessagesPreprocessor: role/content (or from/value) messages, an optional leading system message (else the
    /// system column), then user and assistant turns in alternation; the prompt ends with the last user message and the
    /// answer is the assistant message after it (absent for ppo's prompts).
    /// </summary>
    private static Conversation FromMessages(JsonElement root, Func<string, string> where, SwiftRlhfData kind)
    {
        string column = MessageColumn(root);
        var messages = Messages(root, column, where);
        string? system = OptionalText(root, "system", where) ?? OptionalText(root, "system_prompt", where);
        int start = 0;
        if (messages.Count > 0 && messages[0].Role == "system")
        {
            system = messages[0].Content;
            start = 1;
        }
        var turns = messages.Skip(start).ToList();
        for (int i = 0; i < turns.Count; i++)
        {
            string expected = i % 2 == 0 ? "user" : "assistant";
            if (turns[i].Role != expected)
                throw new InvalidDataException($"{where(column)}[{start + i}] has role '{turns[i].Role}', expected {expected} (the swift rlhf front end reads conversations of alternating user and assistant turns)");
        }
        bool endsWithAnswer = turns.Count % 2 == 0;
        if (turns.Count == 0 || (!endsWithAnswer && kind != SwiftRlhfData.Prompts))
            throw new InvalidDataException($"{where(column)} must end with the assistant's answer after a user message");
        int answered = endsWithAnswer ? turns.Count - 2 : turns.Count - 1;
        var history = new List<(string, string)>();
        for (int i = 0; i < answered; i += 2) history.Add((turns[i].Content, turns[i + 1].Content));
        return new Conversation(system, history, turns[answered].Content, endsWithAnswer ? turns[^1].Content : null);
    }

    /// <summary>The record's message column (messages, conversation or conversations; "messages" when it has none, for the error).</summary>
    private static string MessageColumn(JsonElement root) => MessageColumns.FirstOrDefault(c => Property(root, c) is not null) ?? "messages";

    private static List<(string Role, string Content)> Messages(JsonElement root, string column, Func<string, string> where)
    {
        if (Property(root, column) is not { ValueKind: JsonValueKind.Array } list)
            throw new InvalidDataException($"{where(column)} is missing or not a list of messages");
        var messages = new List<(string, string)>();
        int i = 0;
        foreach (var message in list.EnumerateArray())
        {
            string at = $"{where(column)}[{i}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{at} must be a message object");
            string? role = OptionalText(message, Property(message, "role") is null ? "from" : "role", key => $"{at}.{key}");
            string? content = OptionalText(message, Property(message, "content") is null ? "value" : "content", key => $"{at}.{key}");
            if (role is null || content is null)
                throw new InvalidDataException($"{at} needs a role and a content (role/content or from/value)");
            role = UserRoles.Contains(role) ? "user" : AssistantRoles.Contains(role) ? "assistant" : role;
            if (role is not ("system" or "user" or "assistant"))
                throw new InvalidDataException($"{at} has role '{role}'; the swift rlhf front end reads system, user and assistant messages only");
            messages.Add((role, content));
            i++;
        }
        return messages;
    }

    /// <summary>
    /// The rejected answer: <c>rejected_response</c>, else the assistant turn of <c>rejected_messages</c> that differs
    /// from the chosen one (ms-swift's check_rejected_response); it must exist and differ from the chosen answer.
    /// </summary>
    private static string Rejected(JsonElement root, Func<string, string> where, Conversation chosen)
    {
        string? rejected;
        if (Property(root, "rejected_messages") is not null)
        {
            var alternative = Messages(root, "rejected_messages", where);
            var chosenMessages = Messages(root, MessageColumn(root), where);
            if (alternative.Count != chosenMessages.Count)
                throw new InvalidDataException($"{where("rejected_messages")} must hold the same turns as the chosen conversation ({chosenMessages.Count} messages), got {alternative.Count}");
            rejected = null;
            for (int i = 0; i < alternative.Count; i++)
            {
                if (alternative[i].Role == "user" && alternative[i] != chosenMessages[i])
                    throw new InvalidDataException($"{where("rejected_messages")}[{i}]: the user turns must be the chosen conversation's");
                if (alternative[i].Role == "assistant" && alternative[i].Content != chosenMessages[i].Content) rejected = alternative[i].Content;
            }
        }
        else rejected = OptionalText(root, "rejected_response", where);
        if (rejected is null)
            throw new InvalidDataException($"{where("rejected_response")} is missing (a preference record needs rejected_response or rejected_messages)");
        if (rejected == chosen.Response)
            throw new InvalidDataException($"{where("rejected_response")} is the same as the chosen answer");
        return rejected;
    }
}
