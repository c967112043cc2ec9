using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Tests.Cli;
using SharpTune.Tests.IO;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>
/// SentencePiece models through <c>sharptune check tokenize</c> on a folder holding only <c>tokenizer.model</c>,
/// against the ids and decoded text of Debian's sentencepiece 0.1.97 (tests/fixtures/sentencepiece: the shared
/// cases and models, and our own models and seeded fuzz strings, see its SOURCE.md).
/// </summary>
public sealed class SentencePieceConformanceTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Fixture(string name) => TestPaths.Fixtures("sentencepiece", name);

    /// <summary>A folder with the model as its only file, named as a model folder names it.</summary>
    private string ModelFolder(string model)
    {
        string folder = _dir.File(Path.GetFileNameWithoutExtension(model));
        Directory.CreateDirectory(folder);
        File.Copy(Fixture(model), Path.Combine(folder, "tokenizer.model"), overwrite: true);
        return folder;
    }

    /// <summary>Runs check tokenize over the texts and returns the mismatching cases described (none when all agree).</summary>
    private List<string> Mismatches(string model, IReadOnlyList<string> texts, IReadOnlyList<int[]> ids, IReadOnlyList<string> decoded)
    {
        string stdin = string.Join("\n", texts.Select(t => JsonSerializer.Serialize(t)));
        var r = CliRunner.RunWithInput(stdin, "check", "tokenize", "--tokenizer", ModelFolder(model));
        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(texts.Count, lines.Length);
        var mismatches = new List<string>();
        for (int i = 0; i < texts.Count; i++)
        {
            var actual = JsonNode.Parse(lines[i])!;
            int[] actualIds = actual["ids"]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
            string actualDecoded = actual["decoded"]!.GetValue<string>();
            if (!actualIds.SequenceEqual(ids[i]) || actualDecoded != decoded[i] ||
                actual["decoded_skip_special_tokens"]!.GetValue<string>() != decoded[i])
                mismatches.Add($"{model} {JsonSerializer.Serialize(texts[i])}: ids [{string.Join(",", actualIds)}] " +
                    $"expected [{string.Join(",", ids[i])}], decoded {JsonSerializer.Serialize(actualDecoded)} " +
                    $"expected {JsonSerializer.Serialize(decoded[i])}");
        }
        return mismatches;
    }

    [Theory]
    [InlineData("bpe_bf.model")]
    [InlineData("uni.model")]
    public void SharedCasesEncodeAndDecodeAsSentencePiece(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("cases.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray()
            .Where(c => c.GetProperty("model").GetString() == model).ToArray();
        Assert.Equal(60, cases.Length);

        var mismatches = Mismatches(model, cases.Select(c => c.GetProperty("text").GetString()!).ToArray(),
            cases.Select(c => c.GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray(),
            cases.Select(c => c.GetProperty("decoded").GetString()!).ToArray());

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} mismatches:\n" + string.Join("\n", mismatches.Take(10)));
    }

    [Theory]
    [InlineData("bpe_bf.model")]
    [InlineData("uni.model")]
    [InlineData("bpe.model")]
    [InlineData("uni_bf.model")]
    [InlineData("uni_raw.model")]
    [InlineData("bpe_digits.model")]
    [InlineData("uni_suffix.model")]
    [InlineData("char.model")]
    [InlineData("word.model")]
    public void FuzzStringsEncodeAndDecodeAsSentencePiece(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("fuzz.json")));
        string[] strings = doc.RootElement.GetProperty("strings").EnumerateArray().Select(s => s.GetString()!).ToArray();
        var expected = doc.RootElement.GetProperty("models").GetProperty(model);
        Assert.Equal(3000, strings.Length);

        var mismatches = Mismatches(model, strings,
            expected.GetProperty("ids").EnumerateArray().Select(a => a.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray(),
            expected.GetProperty("decoded").EnumerateArray().Select(s => s.GetString()!).ToArray());

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {strings.Length} mismatch:\n" + string.Join("\n", mismatches.Take(10)));
    }

    /// <summary>
    /// A megabyte of demo text (English and Chinese) encodes in time linear in its length: well within a bound that a
    /// quadratic pass over the text (10^12 steps) could never meet.
    /// </summary>
    [Theory]
    [InlineData("bpe_bf.model")]
    [InlineData("uni.model")]
    public void OneMegabyteEncodesInBoundedTime(string model)
    {
        var tokenizer = Tokenizer.FromDirectory(ModelFolder(model));
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("cases.json")));
        string sample = string.Join(" ", doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
        var text = new System.Text.StringBuilder();
        while (System.Text.Encoding.UTF8.GetByteCount(text.ToString()) < 1 << 20)
            text.Append(sample).Append(' ');

        var watch = Stopwatch.StartNew();
        int[] ids = tokenizer.Encode(text.ToString());
        watch.Stop();

        Assert.True(ids.Length > 100_000);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"1 MB took {watch.Elapsed.TotalSeconds:F1} s");
    }
}
