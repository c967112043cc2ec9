using SharpTune.IO;

namespace SharpTune.Tests.IO;

/// <summary>RFC 4180 records as pandas' read_csv reads them (quoted commas, line breaks and quotes; blank lines skipped).</summary>
public sealed class CsvReaderTests
{
    [Fact]
    public void QuotedFieldsHoldCommasLineBreaksAndDoubledQuotes()
    {
        string text = "\uFEFFquestion,A,answer\r\n\"Which, of these?\",\"say \"\"hi\"\"\",B\n\n\"two\nlines\",,C";

        var rows = CsvReader.Parse(text, "t.csv");

        Assert.Equal(3, rows.Count);
        Assert.Equal(["question", "A", "answer"], rows[0]);
        Assert.Equal(["Which, of these?", "say \"hi\"", "B"], rows[1]);
        Assert.Equal(["two\nlines", "", "C"], rows[2]);
    }

    [Fact]
    public void AQuotedEmptyFieldIsARecordAndAFinalLineBreakIsNot()
    {
        Assert.Equal([[""], ["x"]], CsvReader.Parse("\"\"\nx\n", "t.csv"));
        Assert.Empty(CsvReader.Parse("", "t.csv"));
    }

    [Theory]
    [InlineData("a,\"open\nb", "t.csv: line 1: a quoted field is never closed")]
    [InlineData("a,b\nc,d\"e", "t.csv: line 2: a quote inside an unquoted field")]
    [InlineData("\"a\"b,c", "t.csv: line 1: text after a closing quote")]
    public void MalformedTextIsRefusedWithItsLine(string text, string messageStart)
    {
        var e = Assert.Throws<InvalidDataException>(() => CsvReader.Parse(text, "t.csv"));
        Assert.StartsWith(messageStart, e.Message);
    }
}
