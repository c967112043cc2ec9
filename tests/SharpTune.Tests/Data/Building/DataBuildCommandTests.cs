using System.Text.Json;
using SharpTune.Data.Building;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;
using SharpTune.Tests.EndToEnd;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Data.Building;

/// <summary>
/// `sharptune data build` end to end against <see cref="ScriptedTeacher"/> on loopback: real documents, real HTTP
/// with injected faults, the real CLI (in-process, or as a child process where it is killed or interrupted).
/// </summary>
[Collection(CliCollection.Name)]
public sealed class DataBuildCommandTests
{
    private static string Sentences(string topic, int count) =>
        string.Join(" ", Enumerable.Range(1, count).Select(i => $"The {topic} rule {i} explains step {i} of the {topic} work in plain words."));

    /// <summary>A guide with nested headings, two identical sections (their records are exact duplicates), and one whose answers the teacher cannot find (XYZZY).</summary>
    private static readonly string Guide =
        $"# Widget guide\n\n{Sentences("intro", 3)}\n\n## Installing\n\n{Sentences("install", 3)}\n\n### On Linux\n\n{Sentences("linux", 3)}\n\n"
        + $"## Repeated\n\n{Sentences("repeat", 3)}\n\n## Repeated again\n\n{Sentences("repeat", 3)}\n\n## Unknown\n\nXYZZY. {Sentences("unknown", 3)}\n";

    private const int GuideChunks = 6;

    private static string[] BuildArgs(ScriptedTeacher teacher, string docs, string output, params string[] more) =>
    [
        "data", "build", docs, "--out", output, "--base-url", teacher.BaseUrl, "--model", "teacher-x", "--api-key", "k",
        "--questions", "2", "--min-chars", "80", "--max-chars", "400", "--temperature", "0", "--max-tokens", "256", "--seed", "7", .. more,
    ];

    private static List<JsonElement> Records(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return document.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
    }

    [Fact]
    public async Task BuildsGroundedRecordsThroughRetriesThenCleansDedupsAndRegistersThem()
    {
        await using var teacher = new ScriptedTeacher();
        teacher.Faults[2] = ScriptedTeacher.Fault.TooManyRequests;
        teacher.Faults[4] = ScriptedTeacher.Fault.ServerError;
        teacher.Faults[6] = ScriptedTeacher.Fault.DropConnection;
        using var dir = new TempDir();
        File.WriteAllText(dir.File("guide.md"), Guide);
        Directory.CreateDirectory(dir.File("data"));
        File.WriteAllText(dir.File("data/dataset_info.json"), """{"identity": {"file_name": "identity.json"}}""");

        var result = CliRunner.Run(BuildArgs(teacher, dir.File("guide.md"), dir.File("data/guide_qa.json"), "--paraphrases", "2", "--concurrency", "3"));

        Assert.True(result.ExitCode == 0, result.Stderr);
        var chunks = DocumentChunker.Chunk([dir.File("guide.md")], new ChunkBounds(80, 400));
        Assert.Equal(GuideChunks, chunks.Count);
        // 6 question calls, 2 answers each, a paraphrase call for each of the 5 answerable chunks' 2 questions: 28
        // calls, but the two identical sections ask the same 2 paraphrase requests, sent once each: 26 prompts, each
        // answered once; 3 more requests were the retries of the faults.
        Assert.Equal(6 + 12 + 10 - 2, teacher.Replies.Count);
        Assert.All(teacher.Replies, r => Assert.Equal(1, r.Value));
        Assert.Equal(26 + 3, teacher.Requests);
        Assert.True(result.Stdout.Contains($"build: {GuideChunks} chunks, 29 teacher requests (3 retries, 2 calls reused from the job file or an identical request)"), result.Stdout);
        Assert.Contains("2 questions not answerable from their chunk", result.Stdout);
        Assert.Contains("[sharptune] teacher: 429 Too Many Requests: Rate limit reached; retrying in 1.0 s", result.Stderr);
        Assert.Contains("[sharptune] teacher: 500 Internal Server Error: The server had an error; retrying in", result.Stderr);
        Assert.All(teacher.Bodies, body =>
        {
            Assert.Equal("teacher-x", body.GetProperty("model").GetString());
            Assert.Equal(0, body.GetProperty("temperature").GetDouble());
            Assert.Equal(256, body.GetProperty("max_tokens").GetInt32());
            Assert.Equal(7, body.GetProperty("seed").GetInt32());
        });

        // Every answer is a sentence of its own chunk; each question comes with its 2 paraphrases sharing the answer.
        var raw = Records(dir.File("data/guide_qa.raw.json"));
        Assert.Equal(5 * 2 * 3, raw.Count);
        foreach (var record in raw)
        {
            var chunk = chunks.Single(c => c.Id == record.GetProperty("source").GetString());
            Assert.Equal(chunk.HeadingPath, record.GetProperty("heading_path").EnumerateArray().Select(h => h.GetString()));
            Assert.Equal("", record.GetProperty("input").GetString());
            string answer = record.GetProperty("output").GetString()!;
            Assert.StartsWith("The text says: ", answer);
            Assert.Contains(answer["The text says: ".Length..], chunk.Text);
        }
        Assert.All(raw.Chunk(3), group => Assert.Single(group.Select(r => r.GetProperty("output").GetString()).Distinct()));
        Assert.DoesNotContain(raw, r => r.GetProperty("source").GetString() == chunks[^1].Id);

        // The two identical sections give identical records: dedup keeps the first of each.
        var kept = Records(dir.File("data/guide_qa.json"));
        Assert.Equal(raw.Count - 6, kept.Count);
        Assert.Equal(6, File.ReadAllLines(dir.File("data/guide_qa.dedup-report.jsonl")).Length);
        Assert.True(File.Exists(dir.File("data/guide_qa.clean-report.jsonl")));
        Assert.Contains($"{kept.Count} records kept -> {dir.File("data/guide_qa.json")}", result.Stdout);

        using var info = JsonDocument.Parse(File.ReadAllText(dir.File("data/dataset_info.json")));
        Assert.Equal("identity.json", info.RootElement.GetProperty("identity").GetProperty("file_name").GetString());
        Assert.Equal("guide_qa.json", info.RootElement.GetProperty("guide_qa").GetProperty("file_name").GetString());
        var inspection = DatasetInspector.InspectRegistered(dir.File("data"), "guide_qa", null);
        Assert.Empty(inspection.Problems);
        Assert.Equal(kept.Count, inspection.Records.Count);
        Assert.Equal("alpaca", inspection.Format.Name);
    }

    [PosixFact]
    public async Task KilledAfterAJournalEntryTheSameCommandResumesWithoutRepeatingOrLosingACall()
    {
        await using var reference = new ScriptedTeacher();
        await using var teacher = new ScriptedTeacher();
        using var dir = new TempDir();
        File.WriteAllText(dir.File("guide.md"), Guide);
        Directory.CreateDirectory(dir.File("whole"));
        Directory.CreateDirectory(dir.File("resumed"));
        var whole = CliProcess.Run(BuildArgs(reference, dir.File("guide.md"), dir.File("whole/guide_qa.json"), "--concurrency", "1"));
        Assert.True(whole.ExitCode == 0, whole.Stderr);

        string[] args = BuildArgs(teacher, dir.File("guide.md"), dir.File("resumed/guide_qa.json"), "--concurrency", "1");
        var killed = CliProcess.RunWithFault($"{BuildJournal.AppendedPoint}:5", args);
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Contains($"killed at {BuildJournal.AppendedPoint}:5", killed.Stderr);
        Assert.Equal(5, File.ReadAllLines(dir.File("resumed/guide_qa.journal.jsonl")).Length);
        Assert.False(File.Exists(dir.File("resumed/guide_qa.json")));

        var resumed = CliProcess.Run(args);

        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains("job file " + dir.File("resumed/guide_qa.journal.jsonl") + " (5 calls done before)", resumed.Stderr);
        Assert.Contains("(0 retries, 5 calls reused from the job file or an identical request)", resumed.Stdout);
        Assert.Equal(reference.Replies.Keys.Order(), teacher.Replies.Keys.Order());
        Assert.All(teacher.Replies, r => Assert.Equal(1, r.Value));
        Assert.Equal(File.ReadAllBytes(dir.File("whole/guide_qa.json")), File.ReadAllBytes(dir.File("resumed/guide_qa.json")));
    }

    [PosixFact]
    public async Task CtrlCStopsTheBuildAndTheSameCommandContinues()
    {
        await using var teacher = new ScriptedTeacher { ReplyDelay = TimeSpan.FromMilliseconds(300) };
        using var dir = new TempDir();
        File.WriteAllText(dir.File("guide.md"), Guide);
        string[] args = BuildArgs(teacher, dir.File("guide.md"), dir.File("guide_qa.json"), "--concurrency", "2");

        var (exitCode, stderr) = CliProcess.RunAndInterrupt(args, "[sharptune] data build:", TimeSpan.FromMinutes(1));

        Assert.True(exitCode == 130, $"exit code {exitCode}:\n{stderr}");
        Assert.Contains("run the same command to continue", stderr);
        Assert.False(File.Exists(dir.File("guide_qa.json")));
        teacher.ReplyDelay = TimeSpan.Zero;
        var resumed = CliProcess.Run(args);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(6 + 12, teacher.Replies.Count);
        Assert.All(teacher.Replies, r => Assert.Equal(1, r.Value));
    }

    [Fact]
    public async Task AChangedSectionIsAskedAgainAndSaidSoTheRestComesFromTheJobFile()
    {
        await using var teacher = new ScriptedTeacher();
        using var dir = new TempDir();
        File.WriteAllText(dir.File("guide.md"), Guide);
        string[] args = BuildArgs(teacher, dir.File("guide.md"), dir.File("guide_qa.json"));
        Assert.Equal(0, CliRunner.Run(args).ExitCode);
        int before = teacher.Requests;

        File.WriteAllText(dir.File("guide.md"), Guide.Replace(Sentences("linux", 3), Sentences("linux", 3) + " Linux needs one more package."));
        var rerun = CliRunner.Run(args);

        Assert.True(rerun.ExitCode == 0, rerun.Stderr);
        Assert.Contains("1 chunks changed since the job file recorded them (document, prompt or settings): asked again: guide.md#3", rerun.Stderr);
        Assert.Equal(3, teacher.Requests - before); // its questions and two answers; every other call from the job file
        Assert.Contains("(0 retries, 15 calls reused from the job file or an identical request)", rerun.Stdout);
    }

    [Fact]
    public async Task AClientErrorIsNotRetriedAndNamesTheStatusAndTheServersMessage()
    {
        await using var teacher = new ScriptedTeacher { RequiredKey = "right-key" };
        using var dir = new TempDir();
        File.WriteAllText(dir.File("guide.md"), Guide);

        var result = CliRunner.Run(BuildArgs(teacher, dir.File("guide.md"), dir.File("guide_qa.json"), "--concurrency", "1"));

        Assert.Equal(1, result.ExitCode);
        Assert.EndsWith($"\nerror: the teacher at {teacher.BaseUrl}/chat/completions answered 401 Unauthorized: Incorrect API key provided\n", result.Stderr.ReplaceLineEndings("\n"));
        Assert.Equal(1, teacher.Requests);
        Assert.False(File.Exists(dir.File("guide_qa.json")));
    }

    [Fact]
    public async Task UnusableRepliesAreReportedAndABuildWithoutAnyFailsNamingThem()
    {
        await using var teacher = new ScriptedTeacher();
        using var dir = new TempDir();
        File.WriteAllText(dir.File("odd.md"), $"# Garbled\n\nGARBLE. {Sentences("garble", 2)}\n\n# Silent\n\nNOQUESTIONS. {Sentences("silent", 2)}\n");
        File.WriteAllText(dir.File("fine.md"), $"# Fine\n\n{Sentences("fine", 2)}\n");

        var mixed = CliRunner.Run(BuildArgs(teacher, dir.Path, dir.File("mixed/qa.json"), "--concurrency", "1"));

        Assert.True(mixed.ExitCode == 0, mixed.Stderr);
        Assert.Contains("[sharptune] data build: unusable teacher reply, left out: odd.md#1 answer 0: \"?? ...\"", mixed.Stderr);
        Assert.Contains("[sharptune] data build: unusable teacher reply, left out: odd.md#1 answer 1: \"?? ...\"", mixed.Stderr);
        Assert.Contains("[sharptune] data build: unusable teacher reply, left out: odd.md#2 questions 0: \"\"", mixed.Stderr);
        Assert.Contains("3 unusable replies, 0 questions not answerable", mixed.Stdout);
        Assert.All(Records(dir.File("mixed/qa.json")), r => Assert.Equal("fine.md#1", r.GetProperty("source").GetString()));

        var none = CliRunner.Run(BuildArgs(teacher, dir.File("odd.md"), dir.File("none/qa.json")));

        Assert.Equal(1, none.ExitCode);
        Assert.Contains("error: the teacher's replies gave no records (3 unusable, 0 not answerable from their chunk; unusable: odd.md#", none.Stderr);
        Assert.False(File.Exists(dir.File("none/qa.json")));
        Assert.False(File.Exists(dir.File("none/dataset_info.json")));
    }

    [Fact]
    public async Task SelfInstructKeepsOnlyInstructionsNovelByRougeLAndAnswersThem()
    {
        await using var teacher = new ScriptedTeacher();
        using var dir = new TempDir();
        string[] seeds =
        [
            "Give the antonym of the word in the input.",
            "Tell me a joke about programmers and coffee.",
            "Explain why the sky looks blue during the day.",
            "Recommend a book for someone who likes history.",
        ];
        File.WriteAllLines(dir.File("seed_tasks.jsonl"), seeds.Select((s, i) =>
            JsonSerializer.Serialize(new { id = $"seed_task_{i}", name = $"task{i}", instruction = s, instances = new[] { new { input = "", output = "x" } }, is_classification = false })));

        var result = CliRunner.Run("data", "build", "--seed-tasks", dir.File("seed_tasks.jsonl"), "--self-instruct", "4", "--out", dir.File("si.json"),
            "--base-url", teacher.BaseUrl, "--model", "teacher-x", "--concurrency", "2");

        Assert.True(result.ExitCode == 0, result.Stderr);
        var records = Records(dir.File("si.json"));
        // The teacher's "Please <shown task> now." near copies are refused; its pool tasks are new.
        Assert.Equal(ScriptedTeacher.TaskPool.Take(4), records.Select(r => r.GetProperty("instruction").GetString()));
        Assert.All(records, r => Assert.Equal(DatasetBuilder.SelfInstructSource, r.GetProperty("source").GetString()));
        Assert.All(records, r => Assert.Equal($"A careful response to the task \"{r.GetProperty("instruction").GetString()}\", written out in full.", r.GetProperty("output").GetString()));
        Assert.Contains("1 self-instruct instructions too similar", result.Stdout);
    }
}
