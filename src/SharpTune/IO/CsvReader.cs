using System.Text;

namespace SharpTune.IO;

/// <summary>
/// Comma-separated values as RFC 4180 defines them (and as pandas' <c>read_csv</c> reads them): fields separated by
/// commas, records by CRLF or LF; a field in double quotes may hold commas, line breaks and doubled quotes ("").
/// Values are kept as text. A leading UTF-8 byte order mark is skipped, and so are blank lines (pandas'
/// <c>skip_blank_lines</c>).
/// </summary>
public static class CsvReader
{
    /// <summary>Every record of the text; a final line break does not start an empty record.</summary>
    /// <param name="source">Names the text in errors (a file path, or an archive entry).</param>
    /// <exception cref="InvalidDataException">An unterminated quoted field, or a quote inside an unquoted field.</exception>
    public static List<string[]> Parse(string text, string source)
    {
        var records = new List<string[]>();
        var fields = new List<string>();
        var field = new StringBuilder();
        int i = text.Length > 0 && text[0] == '\uFEFF' ? 1 : 0;
        int line = 1;
        bool atRecordStart = true, quotedInRecord = false;
        while (i < text.Length)
        {
            atRecordStart = false;
            if (text[i] == '"' && field.Length == 0)
            {
                int openedAt = line;
                quotedInRecord = true;
                i++;
                while (true)
                {
                    if (i >= text.Length) throw new InvalidDataException($"{source}: line {openedAt}: a quoted field is never closed");
                    char c = text[i++];
                    if (c == '"')
                    {
                        if (i < text.Length && text[i] == '"') { field.Append('"'); i++; }
                        else break;
                    }
                    else
                    {
                        if (c == '\n') line++;
                        field.Append(c);
                    }
                }
                if (i < text.Length && text[i] is not (',' or '\r' or '\n'))
                    throw new InvalidDataException($"{source}: line {line}: text after a closing quote (a field that starts with a quote must end with one)");
                continue;
            }
            char ch = text[i];
            if (ch == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
                i++;
            }
            else if (ch is '\r' or '\n')
            {
                i += ch == '\r' && i + 1 < text.Length && text[i + 1] == '\n' ? 2 : 1;
                line++;
                bool blank = fields.Count == 0 && field.Length == 0 && !quotedInRecord;
                fields.Add(field.ToString());
                field.Clear();
                if (!blank) records.Add(fields.ToArray());
                fields.Clear();
                atRecordStart = true;
                quotedInRecord = false;
            }
            else
            {
                if (ch == '"') throw new InvalidDataException($"{source}: line {line}: a quote inside an unquoted field (quote the whole field and double the quote)");
                field.Append(ch);
                i++;
            }
        }
        if (!atRecordStart)
        {
            fields.Add(field.ToString());
            records.Add(fields.ToArray());
        }
        return records;
    }
}
