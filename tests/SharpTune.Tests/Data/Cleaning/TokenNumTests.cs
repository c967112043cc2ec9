using System.Text.Json;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

/// <summary>
/// `data clean`'s token_num rule (data-juicer's token_num_filter) counts the tokens LLaMA-Factory's supervised
/// preprocessing gives a record: checked against the sft_preprocess fixture's lengths, which LLaMA-Factory computed.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class TokenNumTests : IDisposable
{
    private static readonly SftPreprocessFixture Qwen = SftPreprocessFixture.Get("qwen.json");
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private string In(string name) => Path.Combine(dir.Path, name);

    /// <summary>The fixture's distinct alpaca records registered with default columns, encoded with qwen and nothing else changed, and LLaMA-Factory's untruncated length of each.</summary>
    private static List<(JsonElement Record, int Length)> AlpacaCases() =>
        Qwen.Cases.Where(c => c.GetProperty("dataset_info").EnumerateObject().Select(p => p.Name).SequenceEqual(["file_name"])
                && c.GetProperty("record").TryGetProperty("instruction", out _)
                && c.GetProperty("settings") is var s && s.GetProperty("template").GetString() == "qwen"
                && !s.GetProperty("train_on_prompt").GetBoolean() && s.GetProperty("default_system").ValueKind == JsonValueKind.Null
                && s.GetProperty("tool_format").ValueKind == JsonValueKind.Null)
            .Select(c => (c.GetProperty("record"), c.GetProperty("length_before_truncation").GetInt32()))
            .DistinctBy(c => c.Item1.GetRawText()).ToList();

    [Fact]
    public void TokenBounds_RemoveRecordsByTheLengthLlamaFactoryEncodesThem()
    {
        var cases = AlpacaCases();
        Assert.True(cases.Count >= 5, $"{cases.Count} alpaca cases in the fixture");
        var lengths = cases.Select(c => c.Length).Order().ToList();
        int min = lengths[1], max = lengths[^2];
        dir.Write("cases.jsonl", string.Concat(cases.Select(c => c.Record.GetRawText().ReplaceLineEndings(" ") + "\n")));
        dir.Write("recipe.yaml", "rules:\n  - token_num\n");

        var result = CliRunner.Run("data", "clean", In("cases.jsonl"), "--out", In("kept.jsonl"), "--report", In("report.jsonl"), "--recipe", In("recipe.yaml"),
            "--tokenizer", Qwen.TokenizerDir, "--template", "qwen", "--min-tokens", min.ToString(), "--max-tokens", max.ToString());

        Assert.True(result.ExitCode == 0, result.Stderr);
        var removed = File.ReadAllLines(In("report.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var expected = cases.Select((c, i) => (i, c.Length)).Where(c => c.Length < min || c.Length > max).ToList();
        Assert.Equal(expected.Select(c => c.i), removed.Select(r => r.GetProperty("record").GetInt32()));
        Assert.Equal(expected.Select(c => c.Length.ToString()), removed.Select(r => r.GetProperty("measured").GetString()));
        Assert.All(removed, r => Assert.Equal("token_num", r.GetProperty("reason").GetString()));
        Assert.Contains($"tokens as template 'qwen' encodes the record (prompt + trained) outside [{min}, {max}]", removed[0].GetProperty("rule").GetString());
        Assert.Equal(cases.Count - expected.Count, File.ReadAllLines(In("kept.jsonl")).Length);
    }

    [Fact]
    public void TokenBoundsWithoutATokenizer_AreRefused_NamingTheRuleAndParameter()
    {
        dir.Write("a.jsonl", """{"instruction": "Say hi", "output": "Hi"}""" + "\n");
        var result = CliRunner.Run("data", "clean", In("a.jsonl"), "--out", In("b.jsonl"), "--max-tokens", "100");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("rule 'token_num' needs the parameter 'tokenizer'", result.Stderr);
        Assert.False(File.Exists(In("b.jsonl")));
    }

    [Fact]
    public void ARecordTrainingCannotEncode_IsRemovedWithTheReason()
    {
        dir.Write("a.jsonl", """{"instruction": "Say hi, please", "output": "Hi there, nice to meet you"}""" + "\n" + """{"instruction": "Say hi", "output": ""}""" + "\n");
        var result = CliRunner.Run("data", "clean", In("a.jsonl"), "--out", In("b.jsonl"), "--report", In("r.jsonl"), "--fields", "instruction,output",
            "--tokenizer", Qwen.TokenizerDir, "--template", "qwen", "--min-tokens", "1");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var removed = JsonDocument.Parse(File.ReadAllLines(In("r.jsonl")).Single()).RootElement;
        Assert.Equal((1, "empty_output"), (removed.GetProperty("record").GetInt32(), removed.GetProperty("reason").GetString()));

        dir.Write("recipe.yaml", "rules:\n  - token_num: {min: 1}\n");
        result = CliRunner.Run("data", "clean", In("a.jsonl"), "--out", In("c.jsonl"), "--report", In("r2.jsonl"), "--recipe", In("recipe.yaml"),
            "--tokenizer", Qwen.TokenizerDir, "--template", "qwen");
        Assert.True(result.ExitCode == 0, result.Stderr);
        removed = JsonDocument.Parse(File.ReadAllLines(In("r2.jsonl")).Single()).RootElement;
        Assert.Equal(("token_num", "not encodable: 'output' is empty"), (removed.GetProperty("reason").GetString(), removed.GetProperty("measured").GetString()));
    }
}
