using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Data.Cleaning;

namespace SharpTune.Bench;

/// <summary>
/// `sharptune data dedup` end to end (file read, text of every record, dedup, kept records read again and written
/// to a file; no report file) on JSON Lines made from LLaMA-Factory's alpaca_en/zh demo data (tests/fixtures/llamafactory):
/// exact dedup of --mb MB (default 100; MB = 10⁶ bytes of file) of records, every tenth one repeated, in MB/s; and
/// MinHash-LSH near dedup (character 5-grams, 128 permutations, threshold 0.8) of --records (default 100,000)
/// records of 300 characters, each 30 fragments of 10 characters cut at seeded offsets of the demo answers (English and
/// Chinese), every tenth a copy of an earlier one with three characters changed (Jaccard ≈ 0.9), in seconds, with how
/// many records it removed against how many near duplicates were planted.
/// </summary>
public sealed class DedupWorkload : IWorkload
{
    /// <summary>Chinese written as UTF-8, not \u escapes, as LLaMA-Factory's files hold it (escapes would double the bytes per character).</summary>
    private static readonly JsonSerializerOptions s_utf8 = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public string Name => "dedup";

    public string Description => "data dedup: exact MB/s on --mb MB of JSONL, near-dedup seconds for --records records of ~300 characters";

    public int DefaultSeq => 0;

    public void Run(BenchContext context)
    {
        int megabytes = int.Parse(context.Option("mb", "100"), CultureInfo.InvariantCulture);
        int records = int.Parse(context.Option("records", "100000"), CultureInfo.InvariantCulture);
        string[] answers = LoadAnswers();
        string dir = Directory.CreateTempSubdirectory("sharptune-bench-dedup-").FullName;
        try
        {
            string exactFile = Path.Combine(dir, "exact.jsonl");
            WriteExactInput(exactFile, answers, megabytes * 1_000_000L);
            double fileMegabytes = new FileInfo(exactFile).Length / 1e6;
            int kept = 0;
            string keptFile = Path.Combine(dir, "kept.jsonl");
            double exact = context.MedianSeconds(() => { kept = Deduplicator.Run(exactFile, new DedupOptions()).Save(new StepTargets(keptFile, null)).Written; });
            context.Report("exact.file", fileMegabytes, "MB");
            context.Report("exact.kept", kept, "records");
            context.Report("exact.throughput", fileMegabytes / exact, "MB/s");

            string nearFile = Path.Combine(dir, "near.jsonl");
            int planted = WriteNearInput(nearFile, answers, records);
            int removed = 0;
            double near = context.MedianSeconds(() => { removed = records - Deduplicator.Run(nearFile, new DedupOptions(Near: true)).Save(new StepTargets(keptFile, null)).Written; });
            context.Report("near.records", records, "records");
            context.Report("near.planted", planted, "near duplicates");
            context.Report("near.removed", removed, "records");
            context.Report("near.seconds", near, "s");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The non-empty answers of LLaMA-Factory's alpaca_en/zh demo data.</summary>
    internal static string[] LoadAnswers() =>
        new[] { "alpaca_en_demo", "alpaca_zh_demo" }.SelectMany(name =>
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(BenchModels.Fixtures("llamafactory", name + ".json")));
            return doc.RootElement.EnumerateArray().Select(r => r.GetProperty("output").GetString() ?? "").ToList();
        }).Where(a => a.Length > 0).ToArray();

    /// <summary>Alpaca-shaped records numbered so that they differ, every tenth a repeat of the one before.</summary>
    internal static void WriteExactInput(string path, string[] answers, long bytes)
    {
        using var writer = new StreamWriter(path, false, new UTF8Encoding(false));
        long written = 0;
        string previous = "";
        for (int i = 0; written < bytes; i++)
        {
            string line = i % 10 == 9 ? previous
                : JsonSerializer.Serialize(new { instruction = $"Question {i}", input = "", output = answers[i % answers.Length] }, s_utf8);
            writer.Write(line);
            writer.Write('\n');
            written += Encoding.UTF8.GetByteCount(line) + 1;
            previous = line;
        }
    }

    /// <summary>Records of 30 seeded 10-character fragments of the demo answers; every tenth a 3-character edit of an earlier record. Returns how many were planted.</summary>
    private static int WriteNearInput(string path, string[] answers, int count)
    {
        string corpus = string.Join(" ", answers);
        var random = new Random(20261205);
        var texts = new string[count];
        int planted = 0;
        using var writer = new StreamWriter(path, false, new UTF8Encoding(false));
        for (int i = 0; i < count; i++)
        {
            if (i % 10 == 9)
            {
                char[] copy = texts[random.Next(i)].ToCharArray();
                for (int edit = 0; edit < 3; edit++) copy[random.Next(copy.Length)] = (char)('a' + random.Next(26));
                texts[i] = new string(copy);
                planted++;
            }
            else
            {
                var text = new StringBuilder(300);
                for (int fragment = 0; fragment < 30; fragment++) text.Append(corpus, random.Next(corpus.Length - 10), 10);
                texts[i] = text.ToString();
            }
            writer.Write(JsonSerializer.Serialize(new { text = texts[i] }, s_utf8));
            writer.Write('\n');
        }
        return planted;
    }
}
