using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Templates;

namespace SharpTune.Data.Cleaning;

/// <summary>The LLaMA-Factory dataset layouts `data convert` reads and writes.</summary>
public enum DatasetLayout { Alpaca, Sharegpt, OpenAi }

/// <summary>What `data convert` does.</summary>
/// <param name="From">The input's layout; null to detect it from the records' fields (as `data inspect` does).</param>
/// <param name="Columns">dataset_info.json <c>columns</c> of the input (e.g. prompt=question), replacing its layout's defaults as a dataset_info entry's do.</param>
/// <param name="Tags">dataset_info.json <c>tags</c> of a sharegpt input (e.g. role_tag=speaker), likewise.</param>
/// <param name="To">The output's layout; null for the input's.</param>
/// <param name="Lenient">Leave out and report records that cannot be read or written, instead of stopping at the first.</param>
public sealed record ConvertOptions(
    DatasetLayout? From = null,
    IReadOnlyDictionary<string, string>? Columns = null,
    IReadOnlyDictionary<string, string>? Tags = null,
    DatasetLayout? To = null,
    bool Lenient = false);

/// <summary>
/// A conversion of one file, its layouts decided (<see cref="FormatConverter.Open"/>): <see cref="Write"/> streams the
/// records through it.
/// </summary>
public sealed class Conversion
{
    private readonly string inputPath;
    private readonly DatasetEntry source;
    private readonly bool lenient;

    internal Conversion(string inputPath, DatasetEntry source, DatasetLayout from, DatasetLayout to, bool lenient)
    {
        (this.inputPath, this.source, From, To, this.lenient) = (inputPath, source, from, to, lenient);
    }

    public DatasetLayout From { get; }

    public DatasetLayout To { get; }

    /// <summary>
    /// Converts the records, streamed (<see cref="StreamedStep"/>: each batch converted on all cores, taken in input
    /// order), into <paramref name="targets"/>, written as a JSON array or JSON Lines as
    /// <paramref name="outputJsonArray"/> says, atomically. Returns the counts, report and the dataset_info.json entry
    /// that reads the written file (its file_name <paramref name="outputFileName"/>), which
    /// <paramref name="beforeCommit"/> is given after the last record, before the output is put in place (so a
    /// failure there leaves no output either).
    /// </summary>
    /// <exception cref="InvalidDataException">The input cannot be read, or (not lenient) a record cannot be converted: the message names the file, record and field.</exception>
    public (StepSummary Summary, JsonObject Entry) Write(StepTargets targets, bool outputJsonArray, string outputFileName, Action<JsonObject>? beforeCommit = null)
    {
        bool system = false, history = false, tools = false, query = false;
        JsonObject entry = null!;
        var summary = StreamedStep.Run(inputPath, DatasetRecordFile.ReadBatchesAnyFormat(inputPath), outputJsonArray, targets,
            record => FormatConverter.Convert(record, source, From, To), (record, converted, report) =>
            {
                if (converted.Problem is { } problem)
                {
                    if (!lenient) throw new InvalidDataException($"{record.Location}: {problem.Why} (leave such records out, reported, with --lenient)");
                    report.Count(problem.Reason);
                    report.Add(record, "removed", problem.Reason, problem.Why);
                    return null;
                }
                system |= converted.System;
                tools |= converted.Tools;
                history |= converted.History;
                query |= converted.Query;
                return converted.Json;
            }, _ =>
            {
                entry = FormatConverter.Entry(To, outputFileName, system, history, tools, query);
                beforeCommit?.Invoke(entry);
            });
        return (summary, entry);
    }
}

/// <summary>
/// `sharptune data convert`: each record is read as training reads it (<see cref="DatasetConverter"/>, with the
/// input's detected or given dataset_info columns and tags) into LLaMA-Factory's aligned form, and written in the
/// target layout from that form, so training on the written file with the entry <see cref="Conversion.Write"/> returns gives the same
/// examples as on the input. The layouts are LLaMA-Factory's (data/README.md): alpaca (instruction, output, system,
/// history of [prompt, response] pairs, tools), sharegpt (conversations of from/value with human, gpt,
/// function_call, observation; system and tools columns) and OpenAI messages (sharegpt with role/content and user,
/// assistant, function_call, tool, the system prompt as a first system message). A record's instruction and input
/// become one user message (joined by a newline, as LLaMA-Factory's converter joins them), so into sharegpt or OpenAI,
/// and from them back to alpaca, they are one instruction; alpaca into alpaca keeps them apart. A record the target
/// cannot hold (a tool call or tool result into alpaca) is an error naming the record and field, or with
/// <see cref="ConvertOptions.Lenient"/> left out and reported.
/// </summary>
public static class FormatConverter
{
    /// <summary>Reasons in the report.</summary>
    public const string Unreadable = "unreadable", NotRepresentable = "not_representable";

    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The sharegpt message column and tags of the OpenAI layout, as LLaMA-Factory's data/README.md registers it.</summary>
    private static readonly (string Key, string Value)[] OpenAiTags =
    [
        ("role_tag", "role"), ("content_tag", "content"), ("user_tag", "user"), ("assistant_tag", "assistant"),
        ("observation_tag", "tool"), ("function_tag", "function_call"), ("system_tag", "system"),
    ];

    public static string Name(DatasetLayout layout) => layout switch
    {
        DatasetLayout.Alpaca => "alpaca",
        DatasetLayout.Sharegpt => "sharegpt",
        _ => "openai",
    };

    /// <exception cref="ArgumentException">Not alpaca, sharegpt or openai.</exception>
    public static DatasetLayout Parse(string name) => name switch
    {
        "alpaca" => DatasetLayout.Alpaca,
        "sharegpt" => DatasetLayout.Sharegpt,
        "openai" => DatasetLayout.OpenAi,
        _ => throw new ArgumentException($"format {MessageText.Quote(name)} is not alpaca, sharegpt or openai"),
    };

    /// <summary>
    /// The conversion of <paramref name="inputPath"/>: its layout given by <paramref name="options"/> or detected, as
    /// `data inspect` detects it, from a first streamed pass over every record; nothing is converted yet.
    /// </summary>
    /// <exception cref="InvalidDataException">The input cannot be read, or holds no record of the layout.</exception>
    public static Conversion Open(string inputPath, ConvertOptions options)
    {
        var (from, source) = SourceEntry(inputPath, options);
        return new Conversion(inputPath, source, from, options.To ?? from, options.Lenient);
    }

    /// <summary>Why a record is left out: the report's reason and the message.</summary>
    internal readonly record struct Refusal(string Reason, string Why);

    /// <summary>One record converted: its JSON in the target layout and which optional columns it uses, or why it cannot be.</summary>
    internal readonly record struct Converted(byte[]? Json, bool System, bool History, bool Tools, bool Query, Refusal? Problem);

    /// <summary>Converts one record (thread-safe: records are converted on all cores).</summary>
    internal static Converted Convert(DatasetRecord record, DatasetEntry source, DatasetLayout from, DatasetLayout to)
    {
        using var document = record.Parse();
        AlignedExample example;
        try
        {
            example = DatasetConverter.Convert(source, document.RootElement);
        }
        catch (InvalidRecordException e)
        {
            return new Converted(null, false, false, false, false, new Refusal(Unreadable, $"cannot be read as {Name(from)}: {e.Message}"));
        }
        try
        {
            bool columns = to == DatasetLayout.Alpaca && source.Formatting == DatasetFormatting.Alpaca;
            byte[] json = columns ? WriteAlpacaColumns(source, document.RootElement, example) : Write(example, to);
            return new Converted(json, !string.IsNullOrEmpty(example.System), example.Messages.Count > 2, !string.IsNullOrEmpty(example.Tools),
                columns && Text(document.RootElement, source.Query) is { Length: > 0 }, null);
        }
        catch (InvalidRecordException e)
        {
            return new Converted(null, false, false, false, false, new Refusal(NotRepresentable, $"{SourceField(source, document.RootElement, e.Message)}, which {Name(to)} cannot hold"));
        }
    }

    /// <summary>
    /// The input's entry: with columns or tags given, a dataset_info entry of them, read as LLaMA-Factory reads one
    /// (a group given replaces its defaults); else the layout detected (or given) from the records' fields.
    /// </summary>
    private static (DatasetLayout, DatasetEntry) SourceEntry(string inputPath, ConvertOptions options)
    {
        if (options.Columns is null && options.Tags is null)
        {
            var detected = DatasetInspector.Detect(inputPath, DatasetRecordFile.ReadBatchesAnyFormat(inputPath).SelectMany(batch => batch),
                options.From is { } given ? Name(given) : null);
            return (Parse(detected.Name), detected.Entry);
        }
        CheckKeys(options.Columns, "--columns", ["prompt", "query", "response", "history", "messages", "system", "tools"]);
        CheckKeys(options.Tags, "--tags", [.. OpenAiTags.Select(t => t.Key)]);
        var from = options.From ?? (options.Columns?.ContainsKey("messages") == true || options.Tags is not null ? DatasetLayout.Sharegpt : DatasetLayout.Alpaca);
        var info = new JsonObject { ["file_name"] = inputPath };
        if (from != DatasetLayout.Alpaca) info["formatting"] = "sharegpt";
        if (options.Columns is { } columns) info["columns"] = Group(columns);
        if (options.Tags is { } tags) info["tags"] = Group(tags);
        else if (from == DatasetLayout.OpenAi) info["tags"] = Group(OpenAiTags.ToDictionary(t => t.Key, t => t.Value));
        using var document = JsonDocument.Parse(info.ToJsonString());
        return (from, DatasetEntry.Parse(Path.GetFileName(inputPath), document.RootElement, "--columns/--tags"));
    }

    /// <summary>LLaMA-Factory ignores a key it does not know, so a misspelt one would silently leave its column unmapped.</summary>
    private static void CheckKeys(IReadOnlyDictionary<string, string>? pairs, string option, string[] known)
    {
        if (pairs?.Keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
            throw new ArgumentException($"{option}: '{unknown}' is not a dataset_info.json key here (known: {string.Join(", ", known)})");
    }

    private static JsonObject Group(IReadOnlyDictionary<string, string> pairs)
    {
        var group = new JsonObject();
        foreach (var (key, value) in pairs) group[key] = value;
        return group;
    }

    /// <summary>
    /// A target's complaint about an aligned message ("message 3 ...") in terms of the input's field: for sharegpt
    /// and OpenAI inputs the index in the messages column (a leading system message counted).
    /// </summary>
    private static string SourceField(DatasetEntry source, JsonElement record, string problem)
    {
        if (source.Formatting != DatasetFormatting.Sharegpt || !problem.StartsWith("message ", StringComparison.Ordinal)) return problem;
        int end = problem.IndexOf(' ', "message ".Length);
        int index = int.Parse(problem["message ".Length..end], System.Globalization.CultureInfo.InvariantCulture);
        var messages = record.GetProperty(source.Messages!);
        bool systemFirst = source.SystemTag is not null && messages[0].TryGetProperty(source.RoleTag!, out var role)
            && role.ValueKind == JsonValueKind.String && role.GetString() == source.SystemTag;
        return $"'{source.Messages}'[{index + (systemFirst ? 1 : 0)}]{problem[end..]}";
    }

    /// <summary>One record in the target layout, compact JSON (non-ASCII text as itself).</summary>
    /// <exception cref="InvalidRecordException">The target cannot hold the record: "message N is ..." (N counts the aligned messages).</exception>
    private static byte[] Write(AlignedExample example, DatasetLayout to)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Compact))
        {
            json.WriteStartObject();
            switch (to)
            {
                case DatasetLayout.Alpaca: WriteAlpaca(json, example); break;
                case DatasetLayout.Sharegpt: WriteMessages(json, example, "conversations", "from", "value", "human", "gpt", "function_call", "observation", null); break;
                default: WriteMessages(json, example, "messages", "role", "content", "user", "assistant", "function_call", "tool", "system"); break;
            }
            if (to != DatasetLayout.OpenAi && !string.IsNullOrEmpty(example.System)) json.WriteString("system", example.System);
            if (!string.IsNullOrEmpty(example.Tools)) json.WriteString("tools", example.Tools);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>
    /// An alpaca record into alpaca: its columns under LLaMA-Factory's default names, instruction and input kept
    /// apart (which `data clean`'s empty_input_marker and `data inspect` look at); <paramref name="example"/> is the
    /// record as training reads it, which has checked every column.
    /// </summary>
    private static byte[] WriteAlpacaColumns(DatasetEntry source, JsonElement record, AlignedExample example)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Compact))
        {
            json.WriteStartObject();
            json.WriteString("instruction", Text(record, source.Prompt) ?? "");
            if (Text(record, source.Query) is { Length: > 0 } input) json.WriteString("input", input);
            json.WriteString("output", example.Messages[^1].Content);
            if (source.History is { } column && record.TryGetProperty(column, out var history) && history.ValueKind == JsonValueKind.Array && history.GetArrayLength() > 0)
            {
                json.WritePropertyName("history");
                history.WriteTo(json);
            }
            if (!string.IsNullOrEmpty(example.System)) json.WriteString("system", example.System);
            if (!string.IsNullOrEmpty(example.Tools)) json.WriteString("tools", example.Tools);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>A mapped column's string value; null when unmapped, absent or not a string.</summary>
    private static string? Text(JsonElement record, string? column) =>
        column is not null && record.TryGetProperty(column, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static void WriteAlpaca(Utf8JsonWriter json, AlignedExample example)
    {
        var messages = example.Messages;
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            if (message.Role == ChatRole.Tool)
                throw new InvalidRecordException($"message {i} is a tool result (observation)");
            if (message.ToolCalls is { Count: > 0 })
                throw new InvalidRecordException($"message {i} is a function call");
        }
        json.WriteString("instruction", messages[^2].Content);
        json.WriteString("output", messages[^1].Content);
        if (messages.Count <= 2) return;
        json.WriteStartArray("history");
        for (int i = 0; i < messages.Count - 2; i += 2)
        {
            json.WriteStartArray();
            json.WriteStringValue(messages[i].Content);
            json.WriteStringValue(messages[i + 1].Content);
            json.WriteEndArray();
        }
        json.WriteEndArray();
    }

    private static void WriteMessages(Utf8JsonWriter json, AlignedExample example, string column, string roleTag, string contentTag,
        string user, string assistant, string function, string observation, string? systemRole)
    {
        json.WriteStartArray(column);
        if (systemRole is not null && !string.IsNullOrEmpty(example.System)) WriteMessage(json, roleTag, systemRole, contentTag, example.System);
        foreach (var message in example.Messages)
        {
            if (message.ToolCalls is { Count: > 0 } calls) WriteMessage(json, roleTag, function, contentTag, FunctionCallText(calls));
            else WriteMessage(json, roleTag, message.Role switch
            {
                ChatRole.User => user,
                ChatRole.Tool => observation,
                _ => assistant,
            }, contentTag, message.Content);
        }
        json.WriteEndArray();
    }

    private static void WriteMessage(Utf8JsonWriter json, string roleTag, string role, string contentTag, string content)
    {
        json.WriteStartObject();
        json.WriteString(roleTag, role);
        json.WriteString(contentTag, content);
        json.WriteEndObject();
    }

    /// <summary>A function-call message's value as LLaMA-Factory's datasets hold it: <c>{"name", "arguments"}</c>, or a list of them for parallel calls; the arguments' JSON text kept as it was.</summary>
    private static string FunctionCallText(IReadOnlyList<ToolCall> calls)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Compact))
        {
            if (calls.Count > 1) json.WriteStartArray();
            foreach (var call in calls)
            {
                json.WriteStartObject();
                json.WriteString("name", call.Name);
                json.WritePropertyName("arguments");
                json.WriteRawValue(call.ArgumentsJson);
                json.WriteEndObject();
            }
            if (calls.Count > 1) json.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The dataset_info.json entry that reads a file written in <paramref name="layout"/>, naming the optional columns the records use.</summary>
    internal static JsonObject Entry(DatasetLayout layout, string fileName, bool system, bool history, bool tools, bool query)
    {
        var entry = new JsonObject { ["file_name"] = fileName };
        var columns = new JsonObject();
        if (layout == DatasetLayout.Alpaca)
        {
            columns["prompt"] = "instruction";
            if (query) columns["query"] = "input";
            columns["response"] = "output";
            if (history) columns["history"] = "history";
        }
        else
        {
            entry["formatting"] = "sharegpt";
            columns["messages"] = layout == DatasetLayout.Sharegpt ? "conversations" : "messages";
        }
        if (system && layout != DatasetLayout.OpenAi) columns["system"] = "system";
        if (tools) columns["tools"] = "tools";
        entry["columns"] = columns;
        if (layout == DatasetLayout.OpenAi) entry["tags"] = Group(OpenAiTags.ToDictionary(t => t.Key, t => t.Value));
        return entry;
    }
}
