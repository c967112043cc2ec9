using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace SharpTune.IO;

/// <summary>
/// Comma-separated values as RFC 4180 defines them (and as pandas' <c>read_csv</c> reads them): fields separated by
/// commas, records by CRLF or LF; a field in double quotes may hold commas, line breaks and doubled quotes ("").
/// Values are kept as text. A leading UTF-8 byte order mark is skipped, and so are blank lines (pandas'
/// <c>skip_blank_lines</c>). Records are read one at a time, so a file is streamed whatever its size.
/// </summary>
public static class CsvReader
{
    /// <summary>Every record of the text; a final line break does not start an empty record.</summary>
    /// <param name="source">Names the text in errors (a file path, or an archive entry).</param>
    /// <exception cref="InvalidDataException">An unterminated quoted field, or a quote inside an unquoted field.</exception>
    public static List<string[]> Parse(string text, string source) => Read(new StringReader(text), source).ToList();

    /// <summary>The records of a UTF-8 file, read one at a time through a buffer, as <see cref="Parse"/> reads a text.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Parse"/>, or the file is not valid UTF-8: the message names the row (1-based, the first record is row 1) holding the first invalid byte.</exception>
    public static IEnumerable<string[]> ReadFile(string path, string source)
    {
        using var reader = new StrictUtf8Reader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16));
        foreach (var record in Read(reader, source)) yield return record;
    }

    private static IEnumerable<string[]> Read(TextReader reader, string source)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1, row = 1;
        if (Peek() == '\uFEFF') Next();
        bool atRecordStart = true, quotedInRecord = false;
        for (int ch = Peek(); ch >= 0; ch = Peek())
        {
            atRecordStart = false;
            if (ch == '"' && field.Length == 0)
            {
                int openedAt = line;
                quotedInRecord = true;
                Next();
                while (true)
                {
                    int c = Next();
                    if (c < 0) throw new InvalidDataException($"{source}: line {openedAt}: a quoted field is never closed");
                    if (c == '"')
                    {
                        if (Peek() == '"') { field.Append('"'); Next(); }
                        else break;
                    }
                    else
                    {
                        if (c == '\n') line++;
                        field.Append((char)c);
                    }
                }
                if (Peek() is >= 0 and not (',' or '\r' or '\n'))
                    throw new InvalidDataException($"{source}: line {line}: text after a closing quote (a field that starts with a quote must end with one)");
                continue;
            }
            if (ch == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
                Next();
            }
            else if (ch is '\r' or '\n')
            {
                Next();
                if (ch == '\r' && Peek() == '\n') Next();
                line++;
                bool blank = fields.Count == 0 && field.Length == 0 && !quotedInRecord;
                fields.Add(field.ToString());
                field.Clear();
                if (!blank)
                {
                    yield return fields.ToArray();
                    row++;
                }
                fields.Clear();
                atRecordStart = true;
                quotedInRecord = false;
            }
            else
            {
                if (ch == '"') throw new InvalidDataException($"{source}: line {line}: a quote inside an unquoted field (quote the whole field and double the quote)");
                field.Append((char)ch);
                Next();
            }
        }
        if (!atRecordStart)
        {
            fields.Add(field.ToString());
            yield return fields.ToArray();
        }

        int Peek()
        {
            try
            {
                return reader.Peek();
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"{source}: row {row}: not valid UTF-8 text ({e.Message})", e);
            }
        }

        int Next()
        {
            int c = Peek();
            if (c >= 0) reader.Read();
            return c;
        }
    }

    /// <summary>
    /// UTF-8 text decoded a buffer at a time that fails only when reading reaches the first invalid byte (a
    /// <see cref="StreamReader"/> fails when it decodes the buffer holding it, before the characters ahead of it are read), so the error names the record that holds it.
    /// </summary>
    private sealed class StrictUtf8Reader(Stream stream) : TextReader
    {
        private readonly byte[] bytes = new byte[1 << 16];
        private readonly char[] chars = new char[1 << 16];
        private int pendingBytes, charPos, charCount;
        private long bytesDecoded;
        private bool atEnd, invalidAhead;

        public override int Peek() => charPos < charCount || Fill() ? chars[charPos] : -1;

        public override int Read() => charPos < charCount || Fill() ? chars[charPos++] : -1;

        /// <summary>Decodes the next characters; false at the end of the file.</summary>
        /// <exception cref="DecoderFallbackException">All characters before the first invalid byte have been read.</exception>
        private bool Fill()
        {
            while (charPos == charCount)
            {
                if (invalidAhead)
                    throw new DecoderFallbackException($"invalid UTF-8 byte 0x{bytes[0]:X2} at byte {bytesDecoded + 1} of the file", [bytes[0]], 0);
                if (atEnd && pendingBytes == 0) return false;
                if (!atEnd)
                {
                    int read = stream.Read(bytes, pendingBytes, bytes.Length - pendingBytes);
                    if (read == 0) atEnd = true;
                    pendingBytes += read;
                }
                // A character never takes more UTF-16 units than UTF-8 bytes, so the buffer of characters always suffices.
                var status = Utf8.ToUtf16(bytes.AsSpan(0, pendingBytes), chars, out int bytesRead, out int charsWritten,
                    replaceInvalidSequences: false, isFinalBlock: atEnd);
                Buffer.BlockCopy(bytes, bytesRead, bytes, 0, pendingBytes - bytesRead);
                pendingBytes -= bytesRead;
                bytesDecoded += bytesRead;
                (charPos, charCount) = (0, charsWritten);
                invalidAhead = status == OperationStatus.InvalidData;
            }
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) stream.Dispose();
            base.Dispose(disposing);
        }
    }
}
