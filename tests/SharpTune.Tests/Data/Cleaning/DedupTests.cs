using System.Text;
using System.Text.Json;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

[Collection(CliCollection.Name)]
public sealed class DedupTests : IDisposable
{
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void LshBands_AreDatasketchsOptimum_AsTheExactReferenceComputesIt()
    {
        // lsh_params.json: make_lsh_params.py, datasketch's _optimal_param criterion evaluated in exact rational arithmetic.
        using var cases = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("dedup", "lsh_params.json")));
        foreach (var c in cases.RootElement.EnumerateArray())
        {
            var bands = LshBands.Optimal(c.GetProperty("threshold").GetDouble(), c.GetProperty("num_perm").GetInt32());
            Assert.Equal((c.GetProperty("bands").GetInt32(), c.GetProperty("rows").GetInt32()), (bands.Bands, bands.Rows));
        }
    }

    [Theory]
    [InlineData("alpaca_en_demo.json")]
    [InlineData("alpaca_zh_demo.json")]
    [InlineData("glaive_toolcall_en_demo.json")]
    [InlineData("glaive_toolcall_zh_demo.json")]
    [InlineData("identity.json")]
    public void ExactDedup_OfTheDemoFiles_FindsThePythonReferencesDuplicates(string name)
    {
        // exact_duplicates.json: make_exact_duplicates.py, the documented rule with Python's unicodedata NFKC.
        using var reference = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("dedup", "exact_duplicates.json")));
        var expected = reference.RootElement.GetProperty(name).GetProperty("duplicates").EnumerateArray()
            .Select(pair => (pair[0].GetInt32(), pair[1].GetInt32())).ToList();

        var result = Deduplicator.Run(TestPaths.Fixtures("llamafactory", name), new DedupOptions());

        using var lines = new MemoryStream();
        result.Report.WriteTo(lines);
        var found = Encoding.UTF8.GetString(lines.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).Select(l => (l.GetProperty("record").GetInt32(), l.GetProperty("duplicate_of").GetInt32()));
        Assert.Equal(expected, found);
        Assert.Equal(reference.RootElement.GetProperty(name).GetProperty("records").GetInt32() - expected.Count, result.KeptCount);
    }

    [Theory]
    [InlineData("  Ｈｅｌｌｏ\u3000ＷＯＲＬＤ １２３ ", "hello world 123")]
    [InlineData("ﬁne\t\n  Tuning", "fine tuning")]
    [InlineData("你好，\n世界！", "你好, 世界!")]
    public void Normalize_IsNfkcLowerCaseWithWhiteSpaceCollapsed(string text, string expected) =>
        Assert.Equal(expected, RecordText.Normalize(text));

    [Fact]
    public void MinHash_Signature_EqualsTheScalarPermutationMinimum()
    {
        var minHash = new MinHash(130);
        uint[] tokens = Enumerable.Range(0, 500).Select(i => (uint)(i * 2654435761u)).ToArray();
        uint[] signature = minHash.Signature(tokens);
        var state = 1UL;
        for (int p = 0; p < 130; p++)
        {
            ulong a = 1 + SplitMix(ref state) % uint.MaxValue, b = SplitMix(ref state) & uint.MaxValue;
            // (a·h + b) mod (2^61 − 1) with UInt128 arithmetic, independently of the folding in MinHash.
            ulong expected = tokens.Min(h => (ulong)(((UInt128)a * h + b) % MinHash.MersennePrime) & uint.MaxValue);
            Assert.Equal(expected, signature[p]);
        }
    }

    [Theory]
    [InlineData(0.2)]
    [InlineData(0.5)]
    [InlineData(0.8)]
    [InlineData(0.95)]
    public void MinHash_Estimate_IsWithinTheExpectedErrorOfTheTrueJaccard(double jaccard)
    {
        // Sets of 2000 tokens sharing `shared` of them: Jaccard = shared / (4000 − shared).
        int shared = (int)Math.Round(4000 * jaccard / (1 + jaccard));
        double truth = shared / (4000.0 - shared);
        var a = Shingles.Hashes(string.Join(' ', Enumerable.Range(0, 2000).Select(i => $"t{i}")), ShingleUnit.Word, 1);
        var b = Shingles.Hashes(string.Join(' ', Enumerable.Range(2000 - shared, 2000).Select(i => $"t{i}")), ShingleUnit.Word, 1);
        var minHash = new MinHash(256);
        double estimate = MinHash.EstimateJaccard(minHash.Signature(a), minHash.Signature(b));
        double standardError = Math.Sqrt(truth * (1 - truth) / 256);
        Assert.InRange(estimate, truth - 3 * standardError, truth + 3 * standardError);
    }

    [Fact]
    public void NearDedup_FindsKnownPairsAtTheLshRate_AndNoUnrelatedRecords()
    {
        // 200 pairs of records with word-shingle Jaccard exactly 0.8 (90 words, 80 shared), no word shared across pairs.
        const int Pairs = 200;
        var lines = new StringBuilder();
        for (int p = 0; p < Pairs; p++)
        {
            string words(int from, int count) => string.Join(' ', Enumerable.Range(from, count).Select(i => $"p{p}w{i}"));
            lines.Append(JsonSerializer.Serialize(new { text = words(0, 90) })).Append('\n');
            lines.Append(JsonSerializer.Serialize(new { text = words(10, 90) })).Append('\n');
        }
        dir.Write("pairs.jsonl", lines.ToString());
        string input = Path.Combine(dir.Path, "pairs.jsonl");

        double Recall(LshBands? bands)
        {
            var result = Deduplicator.Run(input, new DedupOptions(Near: true, Threshold: 0.8, NGram: 1, Unit: ShingleUnit.Word, Bands: bands));
            // Only the second of a pair may go, and only as the first's duplicate.
            Assert.All(result.Report.Counts.Keys, reason => Assert.Equal(Deduplicator.NearReason, reason));
            return (2 * Pairs - result.KeptCount) / (double)Pairs;
        }

        // datasketch's optimum for 0.8 (9 x 13) detects a pair at exactly the threshold with p = 1 − (1 − 0.8^13)^9 ≈ 0.40.
        var optimal = LshBands.Optimal(0.8, 128);
        double expected = optimal.CandidateProbability(0.8), sigma = Math.Sqrt(expected * (1 - expected) / Pairs);
        Assert.InRange(Recall(null), expected - 4 * sigma, expected + 4 * sigma);
        // Bands chosen for recall (20 x 6: p ≈ 0.998 at 0.8) find ≥ 95% of the pairs at the threshold.
        Assert.True(Recall(new LshBands(20, 6)) >= 0.95);
    }

    [Fact]
    public void Dedup_RemovesCraftedDuplicates_KeepsTheFirst_AndWritesTheRestByteForByte()
    {
        // The first 40 records of LLaMA-Factory's alpaca_en_demo (no duplicates among them) with, appended: record 3
        // again in other case and spacing, record 5 with one word changed, and record 7 exactly.
        byte[] demo = File.ReadAllBytes(TestPaths.Fixtures("llamafactory", "alpaca_en_demo.json"));
        using var doc = JsonDocument.Parse(demo);
        var originals = doc.RootElement.EnumerateArray().Take(40).Select(r => r.GetRawText()).ToList();
        var records = doc.RootElement.EnumerateArray().Take(40).Select(r => JsonSerializer.Deserialize<Dictionary<string, string>>(r)!).ToList();
        var caseVariant = records[3].ToDictionary(kv => kv.Key, kv => "  " + kv.Value.ToUpperInvariant().Replace(" ", "   "));
        var oneWord = new Dictionary<string, string>(records[5]);
        oneWord["output"] = ReplaceOneWord(oneWord["output"]);
        var crafted = originals.Concat([JsonSerializer.Serialize(caseVariant), JsonSerializer.Serialize(oneWord), originals[7]]).ToList();
        dir.Write("crafted.json", "[\n  " + string.Join(",\n  ", crafted) + "\n]\n");
        string input = Path.Combine(dir.Path, "crafted.json"), output = Path.Combine(dir.Path, "out.json"), report = Path.Combine(dir.Path, "r.jsonl");
        byte[] before = File.ReadAllBytes(input);

        var run = CliRunner.Run("data", "dedup", input, "--out", output, "--near", "--report", report);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"dedup: 43 records read, 40 written, 3 removed, 0 changed (exact_duplicate 2, near_duplicate 1) -> {output}; report {report}", run.Stdout.Trim());
        Assert.Equal("[\n  " + string.Join(",\n  ", originals) + "\n]\n", File.ReadAllText(output));
        Assert.Equal(before, File.ReadAllBytes(input));
        var lines = File.ReadAllLines(report).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([(40, "exact_duplicate", 3), (42, "exact_duplicate", 7), (41, "near_duplicate", 5)],
            lines.Select(l => (l.GetProperty("record").GetInt32(), l.GetProperty("reason").GetString(), l.GetProperty("duplicate_of").GetInt32())));
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(crafted[41]).RootElement, lines[2].GetProperty("original")));
    }

    [Fact]
    public void Dedup_OfJsonLines_WritesJsonLines_AndDryRunWritesNothing()
    {
        dir.Write("in.jsonl", "{\"instruction\": \"你好\", \"output\": \"a\"}\n{\"instruction\":\"你好\",\"output\":\"A\"}\n{\"instruction\": \"再见\", \"output\": \"b\"}\n");
        string input = Path.Combine(dir.Path, "in.jsonl"), output = Path.Combine(dir.Path, "out.jsonl");

        var dry = CliRunner.Run("data", "dedup", input, "--out", output, "--dry-run");
        Assert.Equal(0, dry.ExitCode);
        Assert.False(File.Exists(output));
        var removed = JsonDocument.Parse(dry.Stdout.Trim()).RootElement;
        Assert.Equal((1, 0), (removed.GetProperty("record").GetInt32(), removed.GetProperty("duplicate_of").GetInt32()));
        Assert.Contains("dry run, nothing written", dry.Stderr);

        Assert.Equal(0, CliRunner.Run("data", "dedup", input, "--out", output, "--fields", "instruction").ExitCode);
        Assert.Equal("{\"instruction\": \"你好\", \"output\": \"a\"}\n{\"instruction\": \"再见\", \"output\": \"b\"}\n", File.ReadAllText(output));
    }

    [Theory]
    [InlineData("bad.json", "[\n  {\"a\": \"x\"},\n  {\"a\": \"y\",}\n]\n", "bad.json: invalid JSON at line 3, byte 13")]
    [InlineData("bad.json", "[\n  {\"a\": \"x\"},\n  {\"a\": \"y\",}\n]\n", "(in record 1)")]
    [InlineData("comma.json", "[\n  {\"a\": \"x\"}\n  {\"a\": \"y\"}\n]\n", "comma.json: invalid JSON at line 3, byte 3")]
    [InlineData("comma.json", "[\n  {\"a\": \"x\"}\n  {\"a\": \"y\"}\n]\n", "(after record 0)")]
    [InlineData("bad.jsonl", "{\"a\": \"x\"}\n{\"a\": \"y\"\n{\"b\"\n", "bad.jsonl: line 2: invalid JSON")]
    [InlineData("list.jsonl", "{\"a\": \"x\"}\n[\"y\"]\n", "list.jsonl: line 2: a record must be a JSON object, got a list")]
    public void MalformedInput_NamesFileAndRecord_AndWritesNothing(string name, string text, string message)
    {
        dir.Write(name, text);
        string output = Path.Combine(dir.Path, "out" + Path.GetExtension(name));
        var run = CliRunner.Run("data", "dedup", Path.Combine(dir.Path, name), "--out", output);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(message, run.Stderr);
        Assert.Equal([Path.Combine(dir.Path, name)], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Dedup_RefusesToWriteOverItsInput_AndNamesAFieldNoRecordHas()
    {
        dir.Write("in.jsonl", "{\"a\": \"x\"}\n");
        string input = Path.Combine(dir.Path, "in.jsonl");
        Assert.Contains("never modify their input", CliRunner.Run("data", "dedup", input, "--out", input).Stderr);
        Assert.Contains("no record has the field 'instrucion' named in --fields",
            CliRunner.Run("data", "dedup", input, "--out", Path.Combine(dir.Path, "o.jsonl"), "--fields", "instrucion").Stderr);
        Assert.Equal("{\"a\": \"x\"}\n", File.ReadAllText(input));
    }

    private static string ReplaceOneWord(string text)
    {
        int space = text.IndexOf(' ', text.Length / 2);
        int next = text.IndexOf(' ', space + 1);
        return text[..(space + 1)] + "zebra" + text[next..];
    }

    private static ulong SplitMix(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
