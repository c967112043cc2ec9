using SharpTune.Data.Building;
using SharpTune.Tests.IO;

namespace SharpTune.Tests.Data.Building;

public sealed class SelfInstructTests
{
    // Hand-worked ROUGE-L F-scores: LCS over words, p = lcs/|hyp|, r = lcs/|ref|, F = 2pr/(p+r).
    [Theory]
    [InlineData("Write a poem about the sea.", "Write a poem about the sea.", 1.0)]
    [InlineData("write a poem about the sea", "Write a story about the sea", 5.0 / 6)] // lcs 5 of 6 words each
    [InlineData("Give me three tips", "give me three tips for sleeping well", 2 * (4.0 / 4) * (4.0 / 7) / (1 + 4.0 / 7))] // lcs 4: p 1, r 4/7
    public void RougeLIsTheWordLcsFScoreIgnoringCase(string a, string b, double expected)
    {
        Assert.Equal(expected, SelfInstruct.RougeL(a, b), 3);
    }

    [Fact]
    public void TheNoveltyRuleRejectsAboveSevenTenthsAlsoForChinese()
    {
        Assert.False(SelfInstruct.IsNovel("Write a story about the sea", ["Tell a joke.", "write a poem about the sea"]));
        Assert.True(SelfInstruct.IsNovel("List four reasons to learn a language", ["write a poem about the sea"]));
        // rouge_score's tokenizer keeps only [a-z0-9], so self-instruct would score these 0 and keep both.
        Assert.True(SelfInstruct.RougeL("介绍一下北京的历史", "介绍一下北京的历史和文化") > SelfInstruct.MaxRougeL);
        Assert.False(SelfInstruct.IsNovel("介绍一下北京的历史", ["介绍一下北京的历史和文化"]));
    }

    [Fact]
    public void SeedTasksAreReadAsSelfInstructWritesThemAndBadLinesNamed()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("seed_tasks.jsonl"),
            """
            {"id": "seed_task_0", "name": "breakfast_suggestion", "instruction": "Is there anything I can eat for a breakfast that doesn't include eggs?", "instances": [{"input": "", "output": "Yes, oatmeal."}], "is_classification": false}

            {"id": "seed_task_1", "name": "antonym", "instruction": "Give the antonym of the word.", "instances": [{"input": "fast", "output": "slow"}], "is_classification": false}
            """);
        Assert.Equal(["Is there anything I can eat for a breakfast that doesn't include eggs?", "Give the antonym of the word."],
            SelfInstruct.ReadSeedTasks(dir.File("seed_tasks.jsonl")));

        File.WriteAllText(dir.File("bad.jsonl"), "{\"instruction\": \"ok\"}\n{\"name\": \"no instruction\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => SelfInstruct.ReadSeedTasks(dir.File("bad.jsonl")));
        Assert.Equal($"{dir.File("bad.jsonl")}: line 2: field \"instruction\" must be a non-empty string", e.Message);
    }
}
