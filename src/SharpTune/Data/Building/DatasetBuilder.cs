using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data.Cleaning;
using SharpTune.IO;

namespace SharpTune.Data.Building;

/// <summary>Settings of <c>sharptune data build</c>.</summary>
/// <param name="OutputPath">The dataset file to write (<c>DIR/NAME.json</c>); its folder gets the dataset_info.json entry and the side files.</param>
/// <param name="Language"><c>en</c>, <c>zh</c>, or <c>auto</c>: per chunk (and for the seed tasks) by <see cref="BuildPrompts.Detect"/>.</param>
/// <param name="Paraphrases">Rewordings asked for each answered question; each shares the original's answer.</param>
/// <param name="SelfInstructCount">New instructions to bootstrap from <paramref name="SeedTasksPath"/>.</param>
public sealed record BuildOptions(
    IReadOnlyList<string> Documents,
    string OutputPath,
    ChunkBounds Bounds,
    int QuestionsPerChunk = 3,
    int Paraphrases = 0,
    string Language = "auto",
    string? PromptsPath = null,
    string? SeedTasksPath = null,
    int SelfInstructCount = 0,
    int Concurrency = 4,
    string? CleanRecipePath = null,
    bool NearDedup = false)
{
    /// <summary>The dataset's name in dataset_info.json: the output file's name without extension.</summary>
    public string DatasetName => Path.GetFileNameWithoutExtension(OutputPath);

    private string Beside(string suffix) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(OutputPath))!, DatasetName + suffix);

    public string JournalPath => Beside(".journal.jsonl");
    public string RawPath => Beside(".raw.json");
    public string CleanedPath => Beside(".cleaned.json");
    public string CleanReportPath => Beside(".clean-report.jsonl");
    public string DedupReportPath => Beside(".dedup-report.jsonl");
}

/// <summary>What a build did, for its summary line.</summary>
public sealed record BuildSummary(int Chunks, int Requests, int Retries, int Reused, IReadOnlyList<string> ChangedChunks,
    IReadOnlyList<string> UnusableReplies, int NotAnswerable, int SimilarInstructions, int Generated, StepSummary Cleaned, StepSummary Deduplicated)
{
    public int Kept => Deduplicated.Written;
}

/// <summary>
/// <c>sharptune data build</c>: documents → chunks (<see cref="DocumentChunker"/>) → per chunk, questions from the
/// teacher, each answered by the teacher from the chunk alone (the chunk is in the answer prompt, which says to answer
/// only from it and to reply a fixed marker when it cannot), optionally paraphrased (each paraphrase shares the
/// original's answer: it asks the same thing of the same chunk, so a second answer would cost a call and could only
/// drift from the grounded one); optionally self-instruct's bootstrapping from seed tasks. Every call goes through
/// the job file (<see cref="BuildJournal"/>), so a rerun repeats none that completed. The records (alpaca:
/// instruction, input, output, plus <c>source</c> (the chunk id) and <c>heading_path</c>, which LLaMA-Factory
/// ignores) are written in chunk and question order whatever order calls finish in, then cleaned by
/// <see cref="DatasetCleaner"/> and deduplicated by <see cref="Deduplicator"/> on instruction, input and output, and
/// registered in the folder's dataset_info.json.
/// </summary>
public sealed class DatasetBuilder
{
    public const string SelfInstructSource = "self-instruct";
    private static readonly string[] ComparedFields = ["instruction", "input", "output"];

    private readonly BuildOptions options;
    private readonly TeacherClient teacher;
    private readonly BuildPrompts prompts;
    private readonly BuildJournal journal;
    private readonly SemaphoreSlim gate;
    private readonly CancellationTokenSource stop;
    private readonly ConcurrentDictionary<string, bool> changedChunks = new();
    private readonly ConcurrentQueue<string> unusable = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> inFlight = new(StringComparer.Ordinal);
    private int reused, notAnswerable, similar;

    private DatasetBuilder(BuildOptions options, TeacherClient teacher, BuildPrompts prompts, BuildJournal journal, CancellationTokenSource stop)
    {
        this.options = options;
        this.teacher = teacher;
        this.prompts = prompts;
        this.journal = journal;
        this.stop = stop;
        gate = new SemaphoreSlim(options.Concurrency);
    }

    /// <summary>Runs the whole build; <see cref="OperationCanceledException"/> when <paramref name="cancel"/> fires, with every completed call in the job file.</summary>
    public static async Task<BuildSummary> RunAsync(BuildOptions options, TeacherSettings teacherSettings, Action<string> log, CancellationToken cancel)
    {
        Check(options);
        DatasetInfoWithEntry(options);
        var prompts = BuildPrompts.Load(options.PromptsPath);
        var chunks = options.Documents.Count == 0 ? [] : DocumentChunker.Chunk(options.Documents, options.Bounds);
        var seeds = options.SeedTasksPath is null ? null : SelfInstruct.ReadSeedTasks(options.SeedTasksPath);
        var recipe = CleaningRecipe.Create(options.CleanRecipePath, [], ComparedFields);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.OutputPath))!);

        using var teacher = new TeacherClient(teacherSettings);
        using var journal = BuildJournal.Open(options.JournalPath);
        // A call that cannot succeed (a 401, retries used up) stops the others: each would fail the same way.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        log($"{chunks.Count} chunks from {options.Documents.Count} document paths; job file {options.JournalPath} ({journal.Recovered} calls done before)");
        var builder = new DatasetBuilder(options, teacher, prompts, journal, stop);
        var perChunk = await Task.WhenAll(chunks.Select(builder.ChunkRecordsAsync));
        var records = perChunk.SelectMany(r => r).ToList();
        if (seeds is not null) records.AddRange(await builder.SelfInstructRecordsAsync(seeds));
        if (records.Count == 0)
            throw new InvalidDataException($"the teacher's replies gave no records ({builder.unusable.Count} unusable, {builder.notAnswerable} not answerable from their chunk"
                + (builder.unusable.IsEmpty ? "" : "; unusable: " + string.Join("; ", builder.unusable.Order(StringComparer.Ordinal).Take(3))) + $"); every reply is in {options.JournalPath}");

        DatasetRecordFile.Write(options.RawPath, jsonArray: true, records);
        var cleaned = DatasetCleaner.Run(options.RawPath, recipe, new StepTargets(options.CleanedPath, options.CleanReportPath));
        var deduplicated = Deduplicator.Run(options.CleanedPath, new DedupOptions(ComparedFields, options.NearDedup))
            .Save(new StepTargets(options.OutputPath, options.DedupReportPath));
        var (infoPath, infoText) = DatasetInfoWithEntry(options);
        DatasetInfoFile.Write(infoPath, infoText);
        return new BuildSummary(chunks.Count, teacher.Requests, teacher.Retries, builder.reused, [.. builder.changedChunks.Keys.Order(StringComparer.Ordinal)],
            [.. builder.unusable.Order(StringComparer.Ordinal)], builder.notAnswerable, builder.similar, records.Count, cleaned, deduplicated);
    }

    private static void Check(BuildOptions options)
    {
        if (options.Documents.Count == 0 && options.SeedTasksPath is null)
            throw new ArgumentException("nothing to build from: name documents (files or folders), or --seed-tasks for self-instruct");
        if (options.QuestionsPerChunk < 1) throw new ArgumentException($"--questions must be at least 1, got {options.QuestionsPerChunk}");
        if (options.Paraphrases < 0) throw new ArgumentException($"--paraphrases must be 0 or more, got {options.Paraphrases}");
        if (options.Concurrency < 1) throw new ArgumentException($"--concurrency must be at least 1, got {options.Concurrency}");
        if (options.SelfInstructCount < 0 || (options.SelfInstructCount > 0) != (options.SeedTasksPath is not null))
            throw new ArgumentException("--self-instruct N (N >= 1) and --seed-tasks FILE go together");
        if (options.Language is not ("auto" or "en" or "zh")) throw new ArgumentException($"--lang must be en, zh or auto, got {options.Language}");
        if (!options.OutputPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--out {options.OutputPath}: the dataset is written as a JSON array: name a .json file");
    }

    private async Task<List<byte[]>> ChunkRecordsAsync(DocumentChunk chunk)
    {
        string language = options.Language == "auto" ? BuildPrompts.Detect(chunk.Text) : options.Language;
        var values = new Dictionary<string, string>
        {
            ["text"] = chunk.Text,
            ["headings"] = chunk.HeadingPath.Count == 0 ? chunk.Source : string.Join(" > ", chunk.HeadingPath),
            ["n"] = options.QuestionsPerChunk.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        string reply = await CallAsync(chunk.Id, BuildPrompts.Questions, 0, prompts.Fill(language, BuildPrompts.Questions, values));
        var questions = TeacherReplies.ParseList(reply, options.QuestionsPerChunk);
        if (questions.Count == 0) Unusable(chunk.Id, BuildPrompts.Questions, 0, reply);
        var perQuestion = await Task.WhenAll(questions.Select((question, i) => QuestionRecordsAsync(chunk, language, values, question, i)));
        return perQuestion.SelectMany(r => r).ToList();
    }

    private async Task<List<byte[]>> QuestionRecordsAsync(DocumentChunk chunk, string language, Dictionary<string, string> chunkValues, string question, int index)
    {
        var values = new Dictionary<string, string>(chunkValues) { ["question"] = question };
        string reply = await CallAsync(chunk.Id, BuildPrompts.Answer, index, prompts.Fill(language, BuildPrompts.Answer, values));
        if (TeacherReplies.ParseAnswer(reply, prompts.NotAnswerableReply(language)) is not { } answer)
        {
            if (reply.Any(char.IsLetterOrDigit)) Interlocked.Increment(ref notAnswerable);
            else Unusable(chunk.Id, BuildPrompts.Answer, index, reply);
            return [];
        }
        var records = new List<byte[]> { Record(question, answer, chunk.Id, chunk.HeadingPath) };
        if (options.Paraphrases == 0) return records;
        values["n"] = options.Paraphrases.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string rewordings = await CallAsync(chunk.Id, BuildPrompts.Paraphrase, index, prompts.Fill(language, BuildPrompts.Paraphrase, values));
        var paraphrases = TeacherReplies.ParseList(rewordings, options.Paraphrases).Where(p => p != question).ToList();
        if (paraphrases.Count == 0) Unusable(chunk.Id, BuildPrompts.Paraphrase, index, rewordings);
        records.AddRange(paraphrases.Select(p => Record(p, answer, chunk.Id, chunk.HeadingPath)));
        return records;
    }

    /// <summary>
    /// Self-instruct's loop: each round shows the teacher up to 8 pool instructions (up to 2 kept ones, the rest
    /// seeds, drawn by a generator seeded with the round number so a rerun asks the same) and keeps the novel ones
    /// (<see cref="SelfInstruct.IsNovel"/>) until enough are kept or 3 rounds in a row add none; then each kept
    /// instruction is answered.
    /// </summary>
    private async Task<List<byte[]>> SelfInstructRecordsAsync(IReadOnlyList<string> seeds)
    {
        string language = options.Language == "auto" ? BuildPrompts.Detect(string.Join("\n", seeds)) : options.Language;
        var kept = new List<string>();
        for (int round = 0, barren = 0; kept.Count < options.SelfInstructCount && barren < 3; round++)
        {
            var random = new Random(round);
            var shown = kept.OrderBy(_ => random.Next()).Take(2).ToList();
            shown.AddRange(seeds.OrderBy(_ => random.Next()).Take(8 - shown.Count));
            shown = [.. shown.OrderBy(_ => random.Next())];
            var values = new Dictionary<string, string>
            {
                ["tasks"] = string.Concat(shown.Select((s, i) => $"{i + 1}. {s}\n")) + $"{shown.Count + 1}.",
                ["n"] = Math.Min(options.SelfInstructCount - kept.Count, 10).ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            string reply = await CallAsync(SelfInstructSource, BuildPrompts.SelfInstruct, round, prompts.Fill(language, BuildPrompts.SelfInstruct, values));
            var proposed = TeacherReplies.ParseList(reply, 20);
            if (proposed.Count == 0) Unusable(SelfInstructSource, BuildPrompts.SelfInstruct, round, reply);
            int before = kept.Count;
            foreach (string instruction in proposed)
            {
                if (kept.Count == options.SelfInstructCount) break;
                if (SelfInstruct.IsNovel(instruction, seeds.Concat(kept))) kept.Add(instruction);
                else similar++;
            }
            barren = kept.Count > before ? 0 : barren + 1;
        }
        var answers = await Task.WhenAll(kept.Select((instruction, i) => CallAsync(SelfInstructSource, "instruction_answer", i, instruction)));
        var records = new List<byte[]>();
        for (int i = 0; i < kept.Count; i++)
        {
            if (answers[i].Trim().Length == 0) Unusable(SelfInstructSource, "instruction_answer", i, answers[i]);
            else records.Add(Record(kept[i], answers[i].Trim(), SelfInstructSource, []));
        }
        return records;
    }

    /// <summary>
    /// One teacher call through the job file: the journal's reply when it has this request, else the teacher's,
    /// journaled before it is used. Identical requests in flight at once (the same question in two chunks) share one call.
    /// </summary>
    private async Task<string> CallAsync(string chunkId, string step, int variant, string prompt)
    {
        string key = $"{chunkId}|{step}|{variant}";
        string body = teacher.RequestBody(prompt);
        string hash = BuildJournal.Hash(body);
        var (known, changed) = journal.Find(key, hash);
        if (known is not null)
        {
            Interlocked.Increment(ref reused);
            return known;
        }
        if (changed) changedChunks.TryAdd(chunkId, true);
        var call = new Lazy<Task<string>>(() => SendAsync(key, hash, body));
        var running = inFlight.GetOrAdd(hash, call);
        if (!ReferenceEquals(running, call)) Interlocked.Increment(ref reused);
        return await running.Value;
    }

    private async Task<string> SendAsync(string key, string hash, string body)
    {
        await gate.WaitAsync(stop.Token);
        try
        {
            string reply = await teacher.CompleteAsync(body, stop.Token);
            // Journaled before the slot is freed, so with --concurrency 1 a kill never finds a second call under way.
            journal.Append(key, hash, reply);
            return reply;
        }
        catch (TeacherException)
        {
            await stop.CancelAsync();
            throw;
        }
        finally
        {
            gate.Release();
        }
    }

    private void Unusable(string chunkId, string step, int variant, string reply)
    {
        string excerpt = reply.Length <= 120 ? reply : reply[..120] + "...";
        unusable.Enqueue($"{chunkId} {step} {variant}: {JsonSerializer.Serialize(excerpt, RelaxedJson)}");
    }

    private static readonly JsonSerializerOptions RelaxedJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static byte[] Record(string instruction, string output, string source, IReadOnlyList<string> headingPath)
    {
        var record = new JsonObject
        {
            ["instruction"] = instruction,
            ["input"] = "",
            ["output"] = output,
            ["source"] = source,
            ["heading_path"] = new JsonArray([.. headingPath.Select(h => (JsonNode)h)]),
        };
        return JsonSerializer.SerializeToUtf8Bytes(record, RelaxedJson);
    }

    /// <summary>
    /// The output folder's dataset_info.json with the dataset's entry (alpaca columns) added or replaced, every other
    /// entry kept (<see cref="DatasetInfoFile"/>); computed before any call too, so a broken file stops the build before
    /// it costs anything.
    /// </summary>
    private static (string Path, string Text) DatasetInfoWithEntry(BuildOptions options)
    {
        string infoPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(options.OutputPath))!, DatasetRegistry.FileName);
        var entry = new JsonObject
        {
            ["file_name"] = DatasetInfoFile.FileNameFor(infoPath, options.OutputPath),
            ["formatting"] = "alpaca",
            ["columns"] = new JsonObject { ["prompt"] = "instruction", ["query"] = "input", ["response"] = "output" },
        };
        return (infoPath, DatasetInfoFile.WithEntry(infoPath, options.DatasetName, entry));
    }
}
