using System.Text;
using SharpTune.IO;

namespace SharpTune.Tests.IO;

/// <summary>
/// RFC 4180 records as pandas' read_csv reads them (quoted commas, line breaks and quotes; blank lines skipped), and
/// a file read record by record (<see cref="CsvReader.ReadFile"/>) as the whole text is parsed.
/// </summary>
public sealed class CsvReaderTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("csv-reader-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

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

    /// <summary>
    /// About 3 MB (many of the file reader's 64 KB buffers): quoted fields spanning lines, doubled quotes, CRLF and LF,
    /// blank lines, a BOM, and characters of two, three and four UTF-8 bytes, so some fall across a buffer boundary.
    /// </summary>
    private static string LongText()
    {
        var text = new StringBuilder("\uFEFFquestion,context,answer\r\n");
        for (int i = 0; i < 20_000; i++)
        {
            text.Append(i % 3 == 0 ? $"\"line {i}\nand \"\"more\"\", é\",x{i},answer {i} 问题 😀{new string('a', i % 150)}\r\n" : $"q{i},,\"\"\n");
            if (i % 1000 == 0) text.Append("\n\r\n");
        }
        return text.Append("last,\"\",end").ToString();
    }

    [Fact]
    public void AFileReadRecordByRecord_GivesTheRecordsOfTheWholeText()
    {
        string text = LongText(), path = Path.Combine(dir, "t.csv");
        File.WriteAllText(path, text, new UTF8Encoding(false));

        var streamed = CsvReader.ReadFile(path, "t.csv").ToList();

        var whole = CsvReader.Parse(text, "t.csv");
        Assert.Equal(20_002, whole.Count);
        Assert.Equal(whole, streamed);
    }

    [Fact]
    public void InvalidUtf8_IsNamedByTheRowHoldingIt()
    {
        string path = Path.Combine(dir, "t.csv");
        byte[] good = Encoding.UTF8.GetBytes(LongText());
        // A lone continuation byte in the record of row 15,000 (the header is row 1), far past the first buffer.
        string row = "q14998,,\"\"\n";
        int at = Encoding.UTF8.GetBytes(LongText()).AsSpan().IndexOf(Encoding.UTF8.GetBytes(row)) + 2;
        good[at] = 0x80;
        File.WriteAllBytes(path, good);

        var e = Assert.Throws<InvalidDataException>(() => CsvReader.ReadFile(path, "t.csv").Count());

        Assert.StartsWith("t.csv: row 15000: not valid UTF-8 text (invalid UTF-8 byte 0x80 at byte ", e.Message);
    }
}
