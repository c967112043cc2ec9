using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpTune.Chat;
using SharpTune.Data.Cleaning;
using SharpTune.Evaluation.Metrics;
using SharpTune.Inference;
using SharpTune.IO;

namespace SharpTune.Swift;

/// <summary>One local evaluation set of <c>swift eval</c>: evalscope's dataset name, the subset and its file.</summary>
public sealed record SwiftEvalSet(string Dataset, string Subset, string File);

/// <summary>What <c>swift eval</c> runs: the model as swift infer opens it, the sets, eval_limit and the new output folder.</summary>
public sealed record SwiftEvalPlan(SwiftRun.Inference Inference, IReadOnlyList<SwiftEvalSet> Sets, int? Limit, string OutputDir,
    string ModelName, IReadOnlyList<string> Notes);

/// <summary>One row of the summary: a set's score under one metric.</summary>
public sealed record SwiftEvalScore(string Dataset, string Subset, string Metric, int Num, double Score);

/// <summary>
/// <c>swift eval</c> as ms-swift runs evalscope's Native backend, on evalscope's two local formats: <c>general_qa</c>
/// (<c>LOCAL_PATH/SUBSET.jsonl</c>, records with <c>query</c> or <c>question</c>, <c>response</c> or <c>answer</c>, an
/// optional <c>system</c>; the query is the user message as written), scored with SharpTune's generation metrics
/// (<see cref="GenerationMetrics"/>: ROUGE-1/2/L F-scores as evalscope's Chinese ROUGE computes them, and
/// LLaMA-Factory's character BLEU-4), and <c>general_mcq</c> (<c>LOCAL_PATH/SUBSET_val.csv</c> with
/// <c>id,question,A,B,...,answer</c>), asked with evalscope's Chinese single-answer template and scored by accuracy of
/// the letter <see cref="ExtractChoice"/> reads from the reply. Named benchmarks need downloads and are refused.
/// Replies are greedy unless <c>--temperature</c> is above 0 (ms-swift's eval default is 0).
/// </summary>
public static class SwiftEval
{
    public const string QaDataset = "general_qa", McqDataset = "general_mcq";
    public const string AccuracyMetric = "acc";
    public const string Rouge1Metric = "Rouge-1-F", Rouge2Metric = "Rouge-2-F", RougeLMetric = "Rouge-L-F", Bleu4Metric = "bleu-4";

    /// <summary>evalscope's CHINESE_SINGLE_ANSWER_TEMPLATE, the general_mcq prompt.</summary>
    public const string McqTemplate = "回答下面的单项选择题，请选出其中的正确答案。你的回答的全部内容应该是这样的格式：\"答案：[LETTER]\"（不带引号），其中 [LETTER] 是 {letters} 中的一个。\n\n问题：{question}\n选项：\n{choices}\n";

    private static readonly Regex AnswerMarker = new(@"答案\s*[:：]\s*\**\s*", RegexOptions.CultureInvariant);
    private static readonly Regex BracketedLabel = new(@"\G[\(\[（【]\s*([A-Za-z\d](?:\s*[,，]\s*[A-Za-z\d])*)\s*[\)\]）】]", RegexOptions.CultureInvariant);
    private static readonly Regex PlainLabel = new(@"\G([A-Za-z0-9][A-Za-z0-9,，]*)", RegexOptions.CultureInvariant);
    private static readonly Regex LabelToken = new(@"[A-Za-z\d]+", RegexOptions.CultureInvariant);

    /// <summary>
    /// <c>swift eval</c>'s arguments: the model as <c>swift infer</c> opens it (<c>--adapters CKPT</c> reads the run's
    /// args.json), each <c>--eval_dataset</c> with its <c>local_path</c> and <c>subset_list</c> from
    /// <c>--dataset_args</c> (JSON, as ms-swift passes it to evalscope), and the report folder
    /// <c>eval_output_dir/YYYYMMDD_HHMMSS</c> (evalscope's work_dir; default <c>eval_output</c>), which must not exist.
    /// </summary>
    /// <exception cref="ArgumentException">A named benchmark, a missing file, an unknown dataset_args key, another backend; the message names it.</exception>
    public static SwiftEvalPlan Prepare(SwiftArguments a, string workingDirectory, DateTime now)
    {
        var inference = SwiftRun.PrepareInference(a);
        var notes = new List<string>(inference.Notes);
        if (a.Text("eval_backend") is { } backend && backend != "Native")
            throw new ArgumentException($"--eval_backend {backend} is not supported: SharpTune runs evalscope's Native backend (general_qa, general_mcq) only");
        var datasets = a.List("eval_dataset");
        if (datasets.Count == 0)
            throw new ArgumentException("swift eval needs --eval_dataset general_qa or general_mcq (with --dataset_args '{\"general_qa\": {\"local_path\": \"DIR\", \"subset_list\": [\"NAME\"]}}')");
        JsonObject datasetArgs;
        try
        {
            datasetArgs = a.Text("dataset_args") is { } text
                ? JsonNode.Parse(text) as JsonObject ?? throw new ArgumentException("--dataset_args must be a JSON object")
                : new JsonObject();
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"--dataset_args is not valid JSON ({e.Message})", e);
        }
        foreach (var (name, _) in datasetArgs)
        {
            if (!datasets.Contains(name))
                throw new ArgumentException($"--dataset_args names '{name}', which is not an --eval_dataset");
        }

        var sets = new List<SwiftEvalSet>();
        foreach (string dataset in datasets)
        {
            if (dataset is not (QaDataset or McqDataset))
                throw new ArgumentException($"--eval_dataset {dataset}: evalscope downloads this benchmark from ModelScope, which SharpTune does not do. " +
                    "Give a local set as general_qa (JSON Lines with query/response) or general_mcq (CSV with id,question,A,B,C,D,answer) with " +
                    "--dataset_args '{\"general_qa\": {\"local_path\": \"DIR\", \"subset_list\": [\"NAME\"]}}', or run `sharptune eval` on MMLU, CMMLU or C-Eval files in LLaMA-Factory's layout");
            var options = datasetArgs[dataset] as JsonObject ?? new JsonObject();
            foreach (var (key, _) in options)
            {
                if (key is not ("local_path" or "subset_list"))
                    throw new ArgumentException($"--dataset_args {dataset}.{key} is not supported (SharpTune reads local_path and subset_list)");
            }
            string localPath = options["local_path"] is JsonValue lp && lp.TryGetValue(out string? path)
                ? Path.GetFullPath(path, workingDirectory)
                : throw new ArgumentException($"--dataset_args {dataset}.local_path is missing: {dataset} is read from local files (SharpTune downloads no evaluation data)");
            var subsets = options["subset_list"] is JsonArray list
                ? list.Select(s => s is JsonValue v && v.TryGetValue(out string? name) ? name : throw new ArgumentException($"--dataset_args {dataset}.subset_list must be a list of names")).ToList()
                : ["default"];
            foreach (string subset in subsets)
            {
                string file = Path.Combine(localPath, dataset == QaDataset ? $"{subset}.jsonl" : $"{subset}_val.csv");
                if (!File.Exists(file))
                    throw new ArgumentException($"--dataset_args {dataset}: subset '{subset}' has no file '{file}' (evalscope reads {(dataset == QaDataset ? "SUBSET.jsonl" : "SUBSET_val.csv")} in local_path)");
                sets.Add(new SwiftEvalSet(dataset, subset, file));
            }
        }
        string root = Path.GetFullPath(a.Text("eval_output_dir") ?? "eval_output", workingDirectory);
        string outputDir = Path.Combine(root, now.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture));
        if (Path.Exists(outputDir)) throw new ArgumentException($"--eval_output_dir: '{outputDir}' already exists; run again in a second");
        string modelName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(
            inference.Adapters.Count > 0 ? inference.Adapters[^1] : inference.Model, workingDirectory)));
        return new SwiftEvalPlan(inference, sets, a.Int("eval_limit", min: 1), outputDir, modelName, notes);
    }

    /// <summary>One question of a set: the system prompt, the user message, the reference and, for general_mcq, the number of options.</summary>
    private sealed record Question(string? System, string Prompt, string Target, int Options);

    /// <summary>
    /// Answers every question of every set with <paramref name="session"/> (each in a new conversation), scores them
    /// and writes evalscope's layout into the plan's folder: <c>predictions/MODEL/DATASET_SUBSET.jsonl</c> (each
    /// question, reply, extracted answer and scores) and <c>reports/MODEL/DATASET.json</c> (every metric per subset).
    /// Nothing is written until every set is scored; a failure or <paramref name="cancellation"/> leaves no folder.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was cancelled.</exception>
    /// <exception cref="InvalidDataException">A record without its question or answer; the message names file, record and field.</exception>
    public static IReadOnlyList<SwiftEvalScore> Run(SwiftEvalPlan plan, ChatSession session, GenerationOptions options, CancellationToken cancellation = default)
    {
        var scores = new List<SwiftEvalScore>();
        var files = new List<(string Path, string Text)>();
        // A record's own system prompt replaces the session's (--system, args.json's or the template's) for its question.
        string? defaultSystem = session.System;
        foreach (var group in plan.Sets.GroupBy(s => s.Dataset))
        {
            var metrics = new Dictionary<string, List<(string Subset, int Num, double Score)>>();
            foreach (var set in group)
            {
                var questions = Read(set);
                if (plan.Limit is { } limit) questions = questions.Take(limit).ToList();
                var lines = new List<string>();
                var sums = new Dictionary<string, double>();
                foreach (var (question, index) in questions.Select((q, i) => (q, i)))
                {
                    session.Clear();
                    session.System = question.System ?? defaultSystem;
                    string reply = session.Reply(question.Prompt, options, cancellation: cancellation).Text;
                    // A reply cut short by the cancellation is not scored: the run stops with nothing written.
                    cancellation.ThrowIfCancellationRequested();
                    var sample = new JsonObject { ["index"] = index, ["input"] = question.Prompt, ["target"] = question.Target, ["prediction"] = reply };
                    var values = new Dictionary<string, double>();
                    if (set.Dataset == McqDataset)
                    {
                        string? choice = ExtractChoice(reply, question.Options);
                        sample["extracted_prediction"] = choice;
                        values[AccuracyMetric] = choice == question.Target ? 1.0 : 0.0;
                    }
                    else
                    {
                        var s = GenerationMetrics.Score(reply, question.Target);
                        values[Rouge1Metric] = s.Rouge1 / 100;
                        values[Rouge2Metric] = s.Rouge2 / 100;
                        values[RougeLMetric] = s.RougeL / 100;
                        values[Bleu4Metric] = s.Bleu4 / 100;
                    }
                    var scoreNode = new JsonObject();
                    foreach (var (metric, value) in values)
                    {
                        scoreNode[metric] = value;
                        sums[metric] = sums.GetValueOrDefault(metric) + value;
                    }
                    sample["score"] = scoreNode;
                    lines.Add(sample.ToJsonString(Compact));
                }
                if (questions.Count == 0) throw new InvalidDataException($"{set.File}: no questions");
                foreach (var (metric, sum) in sums)
                {
                    double mean = sum / questions.Count;
                    if (!metrics.TryGetValue(metric, out var rows)) metrics[metric] = rows = [];
                    rows.Add((set.Subset, questions.Count, mean));
                    scores.Add(new SwiftEvalScore(set.Dataset, set.Subset, metric, questions.Count, mean));
                }
                files.Add((Path.Combine(plan.OutputDir, "predictions", plan.ModelName, $"{set.Dataset}_{set.Subset}.jsonl"), string.Concat(lines.Select(l => l + "\n"))));
            }
            files.Add((Path.Combine(plan.OutputDir, "reports", plan.ModelName, $"{group.Key}.json"), Report(plan.ModelName, group.Key, metrics)));
        }

        session.System = defaultSystem;
        try
        {
            foreach (var (path, text) in files)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                AtomicFile.WriteText(path, text);
            }
        }
        catch
        {
            AtomicFile.DeleteDirectory(plan.OutputDir);
            throw;
        }
        return scores;
    }

    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// evalscope's report of one dataset: its name, the model, the main score (general_mcq: acc; general_qa:
    /// Rouge-L-F) and each metric's score, the mean over all questions, with one entry per subset.
    /// </summary>
    private static string Report(string model, string dataset, Dictionary<string, List<(string Subset, int Num, double Score)>> metrics)
    {
        JsonObject Metric(string name, List<(string Subset, int Num, double Score)> rows)
        {
            int num = rows.Sum(r => r.Num);
            double score = rows.Sum(r => r.Score * r.Num) / num;
            double macro = rows.Average(r => r.Score);
            var subsets = new JsonArray(rows.Select(r => (JsonNode)new JsonObject { ["name"] = r.Subset, ["score"] = r.Score, ["num"] = r.Num }).ToArray());
            return new JsonObject
            {
                ["name"] = name, ["num"] = num, ["score"] = score, ["macro_score"] = macro,
                ["categories"] = new JsonArray(new JsonObject { ["name"] = new JsonArray("default"), ["num"] = num, ["score"] = score, ["macro_score"] = macro, ["subsets"] = subsets }),
            };
        }
        string main = dataset == McqDataset ? AccuracyMetric : RougeLMetric;
        var metricNodes = metrics.Select(m => Metric(m.Key, m.Value)).ToList();
        var report = new JsonObject
        {
            ["name"] = $"{model}@{dataset}",
            ["dataset_name"] = dataset,
            ["model_name"] = model,
            ["score"] = metricNodes.First(m => (string)m["name"]! == main)["score"]!.GetValue<double>(),
            ["metrics"] = new JsonArray(metricNodes.ToArray<JsonNode>()),
        };
        return report.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    /// <summary>The questions of a set as evalscope's general_qa and general_mcq adapters read them.</summary>
    private static List<Question> Read(SwiftEvalSet set)
    {
        var questions = new List<Question>();
        if (set.Dataset == QaDataset)
        {
            foreach (var record in DatasetRecordFile.Read(set.File).Records)
            {
                using var document = record.Parse();
                var root = document.RootElement;
                // evalscope: record.get('question') or record.get('query'), record.get('answer') or record.get('response').
                string? Text(params string[] keys)
                {
                    foreach (string key in keys)
                    {
                        if (root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s) return s;
                        if (root.TryGetProperty(key, out v) && v.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                            throw new InvalidDataException($"{record.Location}: '{key}' must be a string");
                    }
                    return null;
                }
                if (root.TryGetProperty("messages", out _))
                    throw new InvalidDataException($"{record.Location}: 'messages' is not supported by SharpTune's general_qa; give query and response");
                string query = Text("question", "query") ?? throw new InvalidDataException($"{record.Location}: 'query' (or 'question') is missing");
                string answer = Text("answer", "response") ?? "";
                questions.Add(new Question(Text("system"), query, answer, 0));
            }
            return questions;
        }

        string[]? header = null;
        int row = 0;
        foreach (string[] fields in CsvReader.ReadFile(set.File, set.File))
        {
            if (header is null)
            {
                header = fields;
                foreach (string column in new[] { "question", "answer", "A" })
                {
                    if (!header.Contains(column))
                        throw new InvalidDataException($"{set.File}: the header has no '{column}' column (general_mcq needs id,question,A,B,...,answer)");
                }
                continue;
            }
            row++;
            string Field(string column) => Array.IndexOf(header, column) is int i and >= 0 && i < fields.Length ? fields[i] : "";
            // evalscope takes the options A, B, C, ... up to the first letter without a column.
            var options = new List<string>();
            for (char letter = 'A'; letter <= 'J' && header.Contains(letter.ToString()); letter++) options.Add(Field(letter.ToString()));
            string question = Field("question"), target = Field("answer").Trim();
            if (question.Length == 0) throw new InvalidDataException($"{set.File}: row {row}: 'question' is empty");
            if (target.Length != 1 || target[0] < 'A' || target[0] >= 'A' + options.Count)
                throw new InvalidDataException($"{set.File}: row {row}: 'answer' must be one of the option letters A-{(char)('A' + options.Count - 1)}, got '{target}'");
            questions.Add(new Question(null, McqPrompt(question, options), target, options.Count));
        }
        return questions;
    }

    /// <summary>evalscope's prompt of a multiple-choice question: the template with the letters "A,B,C,D" and the options "A) text" a line each.</summary>
    public static string McqPrompt(string question, IReadOnlyList<string> options) => McqTemplate
        .Replace("{letters}", string.Join(",", options.Select((_, i) => ((char)('A' + i)).ToString())))
        .Replace("{question}", question)
        .Replace("{choices}", string.Join("\n", options.Select((o, i) => $"{(char)('A' + i)}) {o}")));

    /// <summary>
    /// The letter a reply chose, as evalscope's parse_answers_zh reads a single answer: after the last "答案：" marker
    /// followed by a label (bracketed "(B)" or plain "B"), the leading run of option letters, which must be one
    /// option; without such a marker the last capital letter of the reply, if it is an option; else none.
    /// </summary>
    public static string? ExtractChoice(string reply, int optionCount)
    {
        var allowed = Enumerable.Range(0, optionCount).Select(i => ((char)('A' + i)).ToString()).ToHashSet(StringComparer.Ordinal);
        string? matched = null;
        foreach (Match marker in AnswerMarker.Matches(reply).Reverse())
        {
            int start = marker.Index + marker.Length;
            foreach (var label in new[] { BracketedLabel, PlainLabel })
            {
                var m = label.Match(reply, start);
                if (!m.Success) continue;
                string prefix = LabelPrefix(m.Groups[1].Value, allowed);
                if (prefix.Length > 0)
                {
                    matched = prefix;
                    break;
                }
            }
            if (matched is not null) break;
        }
        if (matched is null)
        {
            for (int i = reply.Length - 1; i >= 0; i--)
            {
                if (char.IsUpper(reply[i])) return allowed.Contains(reply[i].ToString()) ? reply[i].ToString() : null;
            }
            return null;
        }
        matched = matched.Trim().TrimEnd('。', '.');
        return allowed.Contains(matched) ? matched : null;
    }

    /// <summary>evalscope's _label_prefix: the leading tokens of a capture that are option letters (or runs of them).</summary>
    private static string LabelPrefix(string capture, HashSet<string> allowed)
    {
        int end = 0;
        foreach (Match token in LabelToken.Matches(capture))
        {
            string word = token.Value;
            if (!allowed.Contains(word) && !word.All(c => allowed.Contains(c.ToString()))) break;
            end = token.Index + token.Length;
        }
        return capture[..end];
    }
}
