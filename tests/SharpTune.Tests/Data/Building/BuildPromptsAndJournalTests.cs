using SharpTune.Data.Building;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Data.Building;

public sealed class BuildPromptsAndJournalTests
{
    [Fact]
    public void PlaceholdersAreFilledInOnePassSoInsertedTextIsNeverRewritten()
    {
        var prompts = BuildPrompts.Load(null);
        string filled = prompts.Fill("en", BuildPrompts.Answer, new Dictionary<string, string>
        {
            ["text"] = "A passage quoting {question} literally.",
            ["headings"] = "Guide > Install",
            ["question"] = "What is quoted?",
        });
        Assert.Contains("A passage quoting {question} literally.", filled);
        Assert.Contains("reply exactly: NOT IN PASSAGE.", filled);
        Assert.EndsWith("Question: What is quoted?", filled);
    }

    [Fact]
    public void APromptsFileReplacesPromptsAndBadOnesAreNamed()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("p.json"), """{"zh": {"questions": "就{text}提{n}个问题", "not_answerable": "无"}}""");
        var prompts = BuildPrompts.Load(dir.File("p.json"));
        Assert.Equal("就正文提2个问题", prompts.Fill("zh", BuildPrompts.Questions, new Dictionary<string, string> { ["text"] = "正文", ["n"] = "2" }));
        Assert.Equal("无", prompts.NotAnswerableReply("zh"));
        Assert.Equal("NOT IN PASSAGE", prompts.NotAnswerableReply("en"));

        File.WriteAllText(dir.File("missing.json"), """{"en": {"answer": "Answer {question}"}}""");
        Assert.Equal($"{dir.File("missing.json")}: en.answer: the prompt must contain {{text}}",
            Assert.Throws<InvalidDataException>(() => BuildPrompts.Load(dir.File("missing.json"))).Message);
        File.WriteAllText(dir.File("unknown.json"), """{"en": {"summary": "x"}}""");
        Assert.Contains("en.summary: unknown prompt", Assert.Throws<InvalidDataException>(() => BuildPrompts.Load(dir.File("unknown.json"))).Message);
        File.WriteAllText(dir.File("lang.json"), """{"fr": {}}""");
        Assert.Contains("unknown language \"fr\"", Assert.Throws<InvalidDataException>(() => BuildPrompts.Load(dir.File("lang.json"))).Message);
    }

    [Fact]
    public void TheLanguageIsDetectedFromTheText()
    {
        Assert.Equal("zh", BuildPrompts.Detect("安装之前，请先阅读 README 文件中的说明。"));
        Assert.Equal("en", BuildPrompts.Detect("Read the README before installing."));
    }

    [Fact]
    public void TheJournalKeepsCompletedCallsDropsATornLineAndSeesChangedInputs()
    {
        using var dir = new TempDir();
        string path = dir.File("j.journal.jsonl");
        using (var journal = BuildJournal.Open(path))
        {
            journal.Append("a.md#1|questions|0", BuildJournal.Hash("body 1"), "1. Q?");
            journal.Append("a.md#1|answer|0", BuildJournal.Hash("body 2"), "An answer.");
        }
        // A crash in the middle of an append leaves part of a line.
        File.AppendAllText(path, "{\"key\": \"a.md#1|answer|1\", \"ha");

        using (var journal = BuildJournal.Open(path))
        {
            Assert.Equal(2, journal.Recovered);
            Assert.Equal(("1. Q?", false), journal.Find("a.md#1|questions|0", BuildJournal.Hash("body 1")));
            Assert.Equal((null, true), journal.Find("a.md#1|answer|0", BuildJournal.Hash("body 2, changed")));
            Assert.Equal((null, false), journal.Find("a.md#1|answer|1", BuildJournal.Hash("body 3")));
            journal.Append("a.md#1|answer|1", BuildJournal.Hash("body 3"), "Another.");
        }
        string[] lines = File.ReadAllLines(path);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("{\"key\":\"a.md#1|answer|1\"", lines[2]);

        File.AppendAllText(path, "not json\n");
        Assert.StartsWith($"{path}: line 4 is not a job-file entry (", Assert.Throws<InvalidDataException>(() => BuildJournal.Open(path)).Message);
    }
}
