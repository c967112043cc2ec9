using System.Text.Json;
using SharpTune.Evaluation.Segmentation;

namespace SharpTune.Tests.Evaluation;

public class JiebaSegmenterTests
{
    public static TheoryData<int> ReferenceLines()
    {
        var data = new TheoryData<int>();
        int count = File.ReadLines(TestPaths.Fixtures("metrics", "jieba_reference.jsonl")).Count();
        for (int i = 0; i < count; i++) data.Add(i);
        return data;
    }

    // Python jieba 0.42.1's jieba.cut(text) output for 100 mixed sentences (see tests/fixtures/metrics/SOURCE.md).
    [Theory]
    [MemberData(nameof(ReferenceLines))]
    public void Cut_matches_python_jieba(int line)
    {
        using var doc = JsonDocument.Parse(File.ReadLines(TestPaths.Fixtures("metrics", "jieba_reference.jsonl")).ElementAt(line));
        string text = doc.RootElement.GetProperty("text").GetString()!;
        string[] expected = doc.RootElement.GetProperty("words").EnumerateArray().Select(w => w.GetString()!).ToArray();
        Assert.Equal(expected, JiebaSegmenter.Default.Cut(text));
    }

    [Fact]
    public void Dictionary_words_route_and_unknown_names_go_to_the_hmm()
    {
        // 清华大学 is a dictionary word; 杭研 is not, the HMM joins it (jieba's README example).
        Assert.Equal(["我", "来到", "北京", "清华大学"], JiebaSegmenter.Default.Cut("我来到北京清华大学"));
        Assert.Equal(["他", "来到", "了", "网易", "杭研", "大厦"], JiebaSegmenter.Default.Cut("他来到了网易杭研大厦"));
    }

    [Fact]
    public void Non_han_text_is_split_into_separators_and_single_code_points()
    {
        Assert.Equal(["a1", "\r\n", "b", "，", "😀", " ", "c"], JiebaSegmenter.Default.Cut("a1\r\nb，😀 c"));
    }

    [Fact]
    public void A_malformed_dictionary_line_is_named()
    {
        var error = Assert.Throws<FormatException>(() => JiebaDictionary.Load(new StringReader("一 3 m\n二 x m\n"), "user.txt"));
        Assert.Equal("user.txt: line 2: expected 'word frequency [tag]', got '二 x m'", error.Message);
    }
}
