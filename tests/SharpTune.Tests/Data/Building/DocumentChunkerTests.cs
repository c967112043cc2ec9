using SharpTune.Data.Building;

namespace SharpTune.Tests.Data.Building;

public sealed class DocumentChunkerTests
{
    private static string Sentences(string word, int count) =>
        string.Join(" ", Enumerable.Range(1, count).Select(i => $"The {word} sentence number {i} says something plain."));

    [Fact]
    public void EachChunkCarriesItsHeadingPathAndCodeFencesHideHeadings()
    {
        string doc = $"# Guide\n\n{Sentences("intro", 3)}\n\n## Install\n\n{Sentences("install", 3)}\n\n```sh\n# not a heading\nmake\n```\n\n"
            + $"### On Linux\n\n{Sentences("linux", 3)}\n\n## Use\n\n{Sentences("use", 3)}\n";

        var chunks = DocumentChunker.ChunkDocument("guide.md", doc, markdown: true, new ChunkBounds(50, 1000));

        Assert.Equal(["guide.md#1", "guide.md#2", "guide.md#3", "guide.md#4"], chunks.Select(c => c.Id));
        Assert.Equal(["Guide"], chunks[0].HeadingPath);
        Assert.Equal(["Guide", "Install"], chunks[1].HeadingPath);
        Assert.Contains("# not a heading\nmake", chunks[1].Text);
        Assert.Equal(["Guide", "Install", "On Linux"], chunks[2].HeadingPath);
        Assert.Equal(["Guide", "Use"], chunks[3].HeadingPath);
        Assert.StartsWith("The use sentence number 1", chunks[3].Text);
    }

    [Fact]
    public void ALongSectionIsSplitAtParagraphsThenSentencesWithinTheBound()
    {
        string paragraph = Sentences("long", 4); // 195 characters
        string huge = Sentences("huge", 12);
        string doc = $"# Long\n\n{paragraph}\n\n{paragraph}\n\n{huge}\n";

        var chunks = DocumentChunker.ChunkDocument("long.md", doc, markdown: true, new ChunkBounds(0, 300));

        Assert.All(chunks, c => Assert.True(DocumentChunker.Length(c.Text) <= 300, $"{c.Id}: {DocumentChunker.Length(c.Text)} characters"));
        Assert.All(chunks, c => Assert.Equal(["Long"], c.HeadingPath));
        // Two paragraphs exceed the bound, so the first stands alone; the rest is filled greedily, the 12-sentence
        // paragraph cut at sentence ends only, and nothing is lost or reordered.
        Assert.Equal(paragraph, chunks[0].Text);
        Assert.All(chunks, c => Assert.EndsWith("something plain.", c.Text));
        Assert.Equal(string.Join(" ", paragraph, paragraph, huge), string.Join(" ", chunks.Select(c => c.Text.Replace("\n\n", " "))));
    }

    [Fact]
    public void ChineseTextWithoutSpacesIsBoundedByCharactersAndCutAtSentenceEnds()
    {
        string sentence = "这是一个没有空格的中文句子，用来测试按字符数切分。"; // 25 characters
        string doc = "# 说明\n\n" + string.Concat(Enumerable.Repeat(sentence, 10)) + "\n";

        var chunks = DocumentChunker.ChunkDocument("zh.md", doc, markdown: true, new ChunkBounds(0, 60));

        Assert.Equal(5, chunks.Count);
        Assert.All(chunks, c => Assert.Equal(sentence + sentence, c.Text));
        Assert.All(chunks, c => Assert.Equal(["说明"], c.HeadingPath));
    }

    [Fact]
    public void ASentenceLongerThanTheBoundIsCutAtTheBound()
    {
        string run = new('字', 130);

        var chunks = DocumentChunker.ChunkDocument("run.txt", run, markdown: false, new ChunkBounds(0, 50));

        Assert.Equal([50, 50, 30], chunks.Select(c => DocumentChunker.Length(c.Text)));
        Assert.All(chunks, c => Assert.Empty(c.HeadingPath));
    }

    [Fact]
    public void TinySectionsAreMergedWithASiblingKeepingItsHeadingInTheText()
    {
        string doc = $"# Top\n\n## A\n\nShort A.\n\n## B\n\nShort B.\n\n## C\n\n{Sentences("c", 3)}\n\n# Other\n\nShort other.\n";

        var chunks = DocumentChunker.ChunkDocument("m.md", doc, markdown: true, new ChunkBounds(100, 1000));

        Assert.Equal(2, chunks.Count);
        Assert.Equal(["Top", "A"], chunks[0].HeadingPath);
        Assert.Equal($"Short A.\n\n## B\nShort B.\n\n## C\n{Sentences("c", 3)}", chunks[0].Text);
        // "Other" has no sibling to merge with (its previous chunk sits under another parent): it stays small.
        Assert.Equal(["Other"], chunks[1].HeadingPath);
        Assert.Equal("Short other.", chunks[1].Text);
    }

    [Fact]
    public void AFolderIsReadInPathOrderAndBadBoundsAreRefused()
    {
        using var dir = new SharpTune.Tests.IO.TempDir();
        Directory.CreateDirectory(dir.File("sub"));
        File.WriteAllText(dir.File("sub/b.md"), "# B\n\nText of b.");
        File.WriteAllText(dir.File("a.txt"), "Text of a.");
        File.WriteAllText(dir.File("ignored.json"), "{}");

        var chunks = DocumentChunker.Chunk([dir.Path], new ChunkBounds(0, 100));

        Assert.Equal(["a.txt#1", "sub/b.md#1"], chunks.Select(c => c.Id));
        var e = Assert.Throws<ArgumentException>(() => DocumentChunker.Chunk([dir.Path], new ChunkBounds(200, 100)));
        Assert.Contains("--min-chars (200) <= --max-chars (100)", e.Message);
    }
}
