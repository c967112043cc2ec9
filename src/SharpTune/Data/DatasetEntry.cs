using System.Text.Json;
using SharpTune.IO;

namespace SharpTune.Data;

public enum DatasetFormatting { Alpaca, Sharegpt }

/// <summary>
/// Where a Hub dataset lives: the <c>dataset_info.json</c> key that named it (<c>hf_hub_url</c> or <c>ms_hub_url</c>),
/// the repository, LLaMA-Factory's <c>subset</c> and <c>folder</c>, and the hub that serves it.
/// </summary>
public sealed record HubDatasetSource(string Key, string RepoId, string? Subset, string? Folder, Hub.HubKind Hub = Hub.HubKind.HuggingFace);

/// <summary>
/// One <c>dataset_info.json</c> entry, with LLaMA-Factory's defaults (its <c>DatasetAttr</c>): column names are null
/// where a column is not used. As in LLaMA-Factory, a <c>columns</c> (or <c>tags</c>) object replaces all the
/// defaults of its group, so a column it does not list is unused.
/// </summary>
public sealed class DatasetEntry
{
    /// <summary>Sources SharpTune cannot read, in LLaMA-Factory's order of preference after the Hub sources.</summary>
    private static readonly string[] UnsupportedSourceKeys = ["om_hub_url", "script_url", "cloud_file_name"];

    /// <summary>datasets' split names (its <c>_split_re</c>): a plain name, no slicing such as <c>train[:10%]</c>.</summary>
    private static readonly System.Text.RegularExpressions.Regex SplitName = new(@"^\w+(\.\w+)*\z");
    private static readonly string[] MultimodalColumns = ["images", "videos", "audios"];

    public required string Name { get; init; }

    /// <summary>File or folder, relative to <c>dataset_dir</c>; null for a Hub dataset.</summary>
    public string? FileName { get; init; }

    /// <summary>The Hub repository of an <c>hf_hub_url</c> or <c>ms_hub_url</c> entry; null for local files.</summary>
    public HubDatasetSource? HubSource { get; init; }

    /// <summary>The split to load (LLaMA-Factory's default <c>train</c>); local files hold only that one.</summary>
    public string Split { get; init; } = "train";

    /// <summary>What the entry reads, for messages: its file_name, or its Hub key and repository.</summary>
    public string Origin => HubSource is { } hub ? $"{hub.Key} {hub.RepoId}" : FileName!;

    public DatasetFormatting Formatting { get; init; } = DatasetFormatting.Alpaca;

    /// <summary>Use this many records, drawn at random (repeating records when it exceeds the dataset).</summary>
    public int? NumSamples { get; init; }

    // Alpaca columns.
    public string? Prompt { get; init; } = "instruction";
    public string? Query { get; init; } = "input";
    public string? Response { get; init; } = "output";
    public string? History { get; init; }

    // Sharegpt column.
    public string? Messages { get; init; } = "conversations";

    // Both formats.
    public string? System { get; init; }
    public string? Tools { get; init; }

    /// <summary>
    /// LLaMA-Factory's <c>ranking</c>: a preference dataset, whose records hold a prompt and two answers, the
    /// <see cref="Chosen"/> one and the <see cref="Rejected"/> one (stages rm and dpo read it, no other stage does).
    /// </summary>
    public bool Ranking { get; init; }
    /// <summary>The chosen answer's column: a string (alpaca) or a message object (sharegpt); only with <see cref="Ranking"/>.</summary>
    public string? Chosen { get; init; }
    /// <summary>The rejected answer's column, as <see cref="Chosen"/>.</summary>
    public string? Rejected { get; init; }
    /// <summary>The column of KTO's boolean tag: true when the record's answer is desirable, false when it is not (stage kto).</summary>
    public string? KtoTag { get; init; }

    /// <summary>What the dataset holds, for messages: "a preference dataset (ranking: true)", "a KTO dataset (kto_tag column 'label')" or "a dataset of single answers".</summary>
    public string Kind => Ranking ? "a preference dataset (ranking: true)"
        : KtoTag is not null ? $"a KTO dataset (kto_tag column '{KtoTag}')"
        : "a dataset of single answers (neither ranking: true nor a kto_tag column)";

    // Sharegpt tags: the keys of a message and the role values.
    public string? RoleTag { get; init; } = "from";
    public string? ContentTag { get; init; } = "value";
    public string? UserTag { get; init; } = "human";
    public string? AssistantTag { get; init; } = "gpt";
    public string? ObservationTag { get; init; } = "observation";
    public string? FunctionTag { get; init; } = "function_call";
    public string? SystemTag { get; init; } = "system";

    /// <summary>Where the entry was read, for messages: "dataset_info.json path: dataset 'name'".</summary>
    public string Where { get; init; } = "";

    /// <summary>
    /// Which datasets a stage reads, as LLaMA-Factory's loader and processors decide: rm and dpo read preference
    /// datasets only (its loader refuses any other for the pairwise processor), every other stage refuses them; kto
    /// needs the kto_tag column (its feedback processor drops every record without a tag); sft needs single answers
    /// (its processor drops KTO records, which carry two answer slots).
    /// </summary>
    /// <exception cref="InvalidDataException">The stage cannot use this dataset; the message names both.</exception>
    public void RequireUsableBy(string stage)
    {
        bool pairwise = stage is "rm" or "dpo";
        if (pairwise && !Ranking)
            throw new InvalidDataException($"{Where}: it is {Kind}; stage {stage} trains on preference pairs and needs a dataset registered with ranking: true and its chosen and rejected columns");
        if (!pairwise && Ranking)
            throw new InvalidDataException($"{Where}: it is {Kind}; {StageName(stage)} cannot use it (stages rm and dpo train on it)");
        if (stage == "kto" && KtoTag is null)
            throw new InvalidDataException($"{Where}: it is {Kind}; stage kto needs each record's desirability tag, so the entry's columns must name the kto_tag column");
        if (stage == "sft" && KtoTag is not null)
            throw new InvalidDataException($"{Where}: it is {Kind}; {StageName(stage)} cannot use it (stage kto trains on it)");
    }

    private static string StageName(string stage) => stage == "sft" ? "supervised fine-tuning" : $"stage {stage}";

    /// <summary>
    /// Supervised stages train on answers; an alpaca entry whose columns name no response column (a plain-text
    /// corpus such as LLaMA-Factory's wiki_demo, meant for stage pt) has none.
    /// </summary>
    /// <exception cref="InvalidDataException">The entry has no response column.</exception>
    public void RequireAnswers()
    {
        if (Formatting == DatasetFormatting.Alpaca && Response is null)
            throw new InvalidDataException($"{Where}: columns does not name the 'response' column, so the records have no answers to train on (a plain-text corpus trains with stage: pt)");
    }

    /// <summary>
    /// Reads one entry; <paramref name="source"/> names where it came from, for messages. As in LLaMA-Factory's
    /// get_dataset_list, an <c>ms_hub_url</c> wins when <c>USE_MODELSCOPE_HUB</c> is set or there is no
    /// <c>hf_hub_url</c>, else an <c>hf_hub_url</c>; either wins over a <c>file_name</c>. SharpTune reads no other
    /// remote source, so an entry with a <c>file_name</c> uses it even when it also names one of those (which
    /// LLaMA-Factory would download instead).
    /// </summary>
    /// <exception cref="InvalidDataException">Malformed, or an entry SharpTune cannot read (OpenMind/script/cloud data, multimodal data).</exception>
    public static DatasetEntry Parse(string name, JsonElement info, string source)
    {
        string where = $"{source}: dataset '{name}'";
        if (info.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: the entry must be a JSON object, got {JsonKinds.Describe(info)}");

        HubDatasetSource? hubSource = null;
        string? hfRepo = OptionalString(info, "hf_hub_url", where);
        if (OptionalString(info, "ms_hub_url", where) is { } msRepo && (hfRepo is null || Hub.HubSettings.ModelScopeChosen()))
        {
            // modelscope lists a dataset only by ORG/NAME (its get_dataset_files).
            if (!Hub.HubCache.IsRepoId(msRepo) || !msRepo.Contains('/'))
                throw new InvalidDataException($"{where}: ms_hub_url {MessageText.Quote(msRepo)} is not a ModelScope dataset id (ORG/NAME)");
            hubSource = new HubDatasetSource("ms_hub_url", msRepo, RelativeFolder(info, "subset", where), RelativeFolder(info, "folder", where), Hub.HubKind.ModelScope);
        }
        else if (hfRepo is not null)
        {
            if (!Hub.HubCache.IsRepoId(hfRepo))
                throw new InvalidDataException($"{where}: hf_hub_url {MessageText.Quote(hfRepo)} is not a Hub dataset id (NAME or ORG/NAME)");
            hubSource = new HubDatasetSource("hf_hub_url", hfRepo, RelativeFolder(info, "subset", where), RelativeFolder(info, "folder", where));
        }
        string? fileName = hubSource is null ? OptionalString(info, "file_name", where) : null;
        if (hubSource is null && fileName is null)
        {
            foreach (string key in UnsupportedSourceKeys)
            {
                if (OptionalString(info, key, where) is { } remote)
                    throw new InvalidDataException(
                        $"{where}: it is read from {key} {MessageText.Quote(remote)}, which SharpTune does not support here; download the data into the dataset folder and register it with file_name");
            }
            throw new InvalidDataException($"{where}: the entry has no file_name");
        }

        bool isRanking = false;
        if (info.TryGetProperty("ranking", out var ranking) && ranking.ValueKind != JsonValueKind.Null)
        {
            if (ranking.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                throw new InvalidDataException($"{where}: ranking must be true or false, got {JsonKinds.Describe(ranking)}");
            isRanking = ranking.ValueKind == JsonValueKind.True;
        }
        string split = OptionalString(info, "split", where) ?? "train";
        if (hubSource is null && split != "train")
            throw new InvalidDataException($"{where}: split {MessageText.Quote(split)} does not exist in a local file (only 'train')");
        if (!SplitName.IsMatch(split))
            throw new InvalidDataException($"{where}: split {MessageText.Quote(split)} is not a split name (letters, digits and '_', parts joined by '.'; no slicing)");

        var formatting = OptionalString(info, "formatting", where) switch
        {
            null or "alpaca" => DatasetFormatting.Alpaca,
            "sharegpt" => DatasetFormatting.Sharegpt,
            var other => throw new InvalidDataException($"{where}: formatting {MessageText.Quote(other)} is not supported (alpaca or sharegpt)"),
        };

        int? numSamples = null;
        if (info.TryGetProperty("num_samples", out var n) && n.ValueKind != JsonValueKind.Null)
        {
            if (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out int count) || count <= 0)
                throw new InvalidDataException($"{where}: num_samples must be a positive integer, got {MessageText.Quote(n.GetRawText())}");
            numSamples = count;
        }

        var defaults = new DatasetEntry { Name = name, FileName = fileName };
        var columns = Group(info, "columns", where);
        if (columns is { } c)
        {
            string columnsWhere = where + ": columns";
            foreach (string unsupported in MultimodalColumns)
            {
                if (OptionalString(c, unsupported, columnsWhere) is not null)
                    throw new InvalidDataException($"{where}: the '{unsupported}' column is for multimodal training, which SharpTune cannot use");
            }
        }
        var tags = Group(info, "tags", where);
        string? Column(string key, string? fallback) => columns is { } c ? OptionalString(c, key, where + ": columns") : fallback;
        string? Tag(string key, string? fallback) => tags is { } t ? OptionalString(t, key, where + ": tags") : fallback;
        var entry = new DatasetEntry
        {
            Name = name, FileName = fileName, HubSource = hubSource, Split = split, Formatting = formatting, NumSamples = numSamples,
            Prompt = Column("prompt", defaults.Prompt), Query = Column("query", defaults.Query), Response = Column("response", defaults.Response),
            History = Column("history", defaults.History), Messages = Column("messages", defaults.Messages),
            System = Column("system", defaults.System), Tools = Column("tools", defaults.Tools),
            Ranking = isRanking, Chosen = Column("chosen", null), Rejected = Column("rejected", null), KtoTag = Column("kto_tag", null),
            RoleTag = Tag("role_tag", defaults.RoleTag), ContentTag = Tag("content_tag", defaults.ContentTag),
            UserTag = Tag("user_tag", defaults.UserTag), AssistantTag = Tag("assistant_tag", defaults.AssistantTag),
            ObservationTag = Tag("observation_tag", defaults.ObservationTag), FunctionTag = Tag("function_tag", defaults.FunctionTag),
            SystemTag = Tag("system_tag", defaults.SystemTag),
            Where = where,
        };

        if (entry.Ranking && (entry.Chosen is null || entry.Rejected is null))
            throw new InvalidDataException($"{where}: a preference dataset (ranking: true) must name its 'chosen' and 'rejected' columns in columns");
        if (entry.Ranking && entry.KtoTag is not null)
            throw new InvalidDataException($"{where}: a preference dataset (ranking: true) has no kto_tag column; KTO data is a dataset of single answers with a kto_tag column");
        if (entry.Formatting == DatasetFormatting.Sharegpt)
        {
            if (entry.Messages is null)
                throw new InvalidDataException($"{where}: columns does not name the 'messages' column (sharegpt)");
            if (entry.RoleTag is null || entry.ContentTag is null || entry.UserTag is null || entry.AssistantTag is null)
                throw new InvalidDataException($"{where}: tags must name role_tag, content_tag, user_tag and assistant_tag");
        }
        return entry;
    }

    /// <summary>The <c>columns</c> or <c>tags</c> object, null when absent.</summary>
    private static JsonElement? Group(JsonElement info, string key, string where)
    {
        if (!info.TryGetProperty(key, out var group) || group.ValueKind == JsonValueKind.Null)
            return null;
        if (group.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: {key} must be an object, got {JsonKinds.Describe(group)}");
        return group;
    }

    /// <summary>A <c>subset</c> or <c>folder</c>: a relative folder of the repository, '/'-separated.</summary>
    private static string? RelativeFolder(JsonElement info, string key, string where)
    {
        if (OptionalString(info, key, where) is not { } value) return null;
        string folder = value.Trim('/');
        if (folder.Length == 0 || folder.Contains('\\', StringComparison.Ordinal) || folder.Split('/').Any(part => part is "" or "." or ".."))
            throw new InvalidDataException($"{where}: {key} {MessageText.Quote(value)} is not a folder of the repository");
        return folder;
    }

    private static string? OptionalString(JsonElement obj, string key, string where)
    {
        if (!obj.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: '{key}' must be a string, got {JsonKinds.Describe(value)}");
        return value.GetString();
    }
}
