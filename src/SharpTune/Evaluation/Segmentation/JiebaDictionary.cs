using System.IO.Compression;
using System.Text;

namespace SharpTune.Evaluation.Segmentation;

/// <summary>
/// jieba's prefix dictionary (<c>gen_pfdict</c>): every word of <c>dict.txt</c> with its frequency, every proper
/// prefix of a word with frequency 0 (so the DAG scan knows when to keep extending), and the total frequency.
/// The data is jieba 0.42.1's own <c>dict.txt</c>, embedded gzipped (see Data/SOURCE.md).
/// </summary>
public sealed class JiebaDictionary
{
    readonly Dictionary<string, long> _frequencies;
    readonly Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public double LogTotal { get; }

    JiebaDictionary(Dictionary<string, long> frequencies, long total)
    {
        _frequencies = frequencies;
        _lookup = frequencies.GetAlternateLookup<ReadOnlySpan<char>>();
        LogTotal = Math.Log(total);
    }

    /// <summary>True when the text is a word or a prefix of one (<c>frag in FREQ</c>).</summary>
    public bool ContainsPrefix(ReadOnlySpan<char> text) => _lookup.ContainsKey(text);

    /// <summary>The word's frequency; 0 for a mere prefix or an unknown text (<c>FREQ.get(w)</c> being falsy).</summary>
    public long Frequency(ReadOnlySpan<char> text) => _lookup.TryGetValue(text, out long f) ? f : 0;

    public static JiebaDictionary LoadEmbedded()
    {
        using var stream = typeof(JiebaDictionary).Assembly.GetManifestResourceStream("SharpTune.Evaluation.Segmentation.jieba_dict.txt.gz")
            ?? throw new InvalidOperationException("the jieba dictionary is missing from the SharpTune assembly");
        using var gzip = new GZipStream(stream, CompressionMode.Decompress);
        return Load(new StreamReader(gzip, Encoding.UTF8), "jieba_dict.txt");
    }

    /// <summary>Reads <c>word freq [tag]</c> lines as jieba does; a line that does not parse is an error naming it.</summary>
    public static JiebaDictionary Load(TextReader reader, string name)
    {
        var frequencies = new Dictionary<string, long>(600_000, StringComparer.Ordinal);
        long total = 0;
        int lineNumber = 0;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            lineNumber++;
            line = line.Trim();
            if (line.Length == 0) continue;
            string[] fields = line.Split(' ');
            if (fields.Length < 2 || !long.TryParse(fields[1], out long frequency))
                throw new FormatException($"{name}: line {lineNumber}: expected 'word frequency [tag]', got '{line}'");
            string word = fields[0];
            frequencies[word] = frequency;
            total += frequency;
            for (int end = 1; end < word.Length; end++)
                frequencies.TryAdd(word[..end], 0);
        }
        if (total <= 0) throw new FormatException($"{name}: no words with a positive frequency");
        return new JiebaDictionary(frequencies, total);
    }
}
