using System.Text.Json;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

[Collection(CliCollection.Name)]
public sealed class CleanTests : IDisposable
{
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    // Expected ratios worked by hand from data-juicer's definitions (data_juicer/ops/filter/*.py).
    [Fact]
    public void CharacterRepetitionRatio_FollowsDataJuicer()
    {
        // 12 a's: three 10-grams, all "aaaaaaaaaa": one distinct n-gram, ⌊√1⌋ = 1 repeated kind taking 3 of 3.
        Assert.Equal(1.0, TextMeasures.CharacterRepetitionRatio(new string('a', 12), 10));
        // No 10-gram repeats: no repeated kind counts.
        Assert.Equal(0.0, TextMeasures.CharacterRepetitionRatio("abcdefghijklmnop", 10));
        // "abab" + "c" with n = 2: ab, ba, ab, bc; distinct 3, ⌊√3⌋ = 1, one repeated kind (ab, 2) → 2/4.
        Assert.Equal(0.5, TextMeasures.CharacterRepetitionRatio("ababc", 2));
        // Shorter than n: no n-grams, ratio 0.
        Assert.Equal(0.0, TextMeasures.CharacterRepetitionRatio("short", 10));
    }

    [Fact]
    public void WordRepetitionRatio_FollowsDataJuicer()
    {
        // Words lower-cased and stripped of special characters: "the","cat","the","cat","ran"; 2-grams
        // "the cat" ×2, "cat the", "cat ran" → 2 of 4 occurrences repeat.
        Assert.Equal(0.5, TextMeasures.WordRepetitionRatio("The cat, the CAT ran!", 2));
        // "..." strips to nothing and is dropped: "a","b","a","b" → "a b" ×2, "b a" → 2/3.
        Assert.Equal(2.0 / 3, TextMeasures.WordRepetitionRatio("a b ... a b", 2), 12);
        Assert.Equal(0.0, TextMeasures.WordRepetitionRatio("one two three", 10));
    }

    /// <summary>
    /// The repetition measures (rolling hashes, sorted keys, ranges of one lower-cased text: built for speed) against
    /// data-juicer's definitions written out plainly (n-gram strings counted in a dictionary), on the English and
    /// Chinese demo texts and on repetitive ones with surrogate pairs, mixed case and stripped punctuation.
    /// </summary>
    [Fact]
    public void RepetitionRatios_MatchTheirPlainDefinitions()
    {
        var texts = new List<string>
        {
            string.Concat(Enumerable.Repeat("ab", 300)), string.Concat(Enumerable.Repeat("😀a😀b", 40)),
            string.Concat(Enumerable.Repeat("The cat, THE cat! the dog. ", 30)), "a", "",
        };
        foreach (string demo in (string[])["alpaca_en_demo.json", "alpaca_zh_demo.json"])
        {
            using var records = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("llamafactory", demo)));
            foreach (var record in records.RootElement.EnumerateArray())
                texts.Add(record.GetProperty("instruction").GetString() + "\n" + record.GetProperty("output").GetString());
        }
        foreach (string text in texts)
            foreach (int n in (int[])[2, 3, 10])
            {
                Assert.Equal(PlainCharacterRepetition(text, n), TextMeasures.CharacterRepetitionRatio(text, n), 12);
                Assert.Equal(PlainWordRepetition(text, n), TextMeasures.WordRepetitionRatio(text, n), 12);
            }
    }

    /// <summary>data_juicer/ops/filter/character_repetition_filter.py.</summary>
    private static double PlainCharacterRepetition(string text, int n)
    {
        var points = text.EnumerateRunes().Select(r => r.ToString()).ToList();
        var frequency = new Dictionary<string, int>();
        for (int i = 0; i + n <= points.Count; i++)
        {
            string gram = string.Concat(points.Skip(i).Take(n));
            frequency[gram] = frequency.GetValueOrDefault(gram) + 1;
        }
        if (frequency.Count == 0) return 0;
        var counts = frequency.Values.OrderDescending().ToList();
        int top = Math.Min((int)Math.Sqrt(counts.Count), counts.Count(c => c > 1));
        return (double)counts.Take(top).Sum() / counts.Sum();
    }

    /// <summary>data_juicer/ops/filter/word_repetition_filter.py (tokenization off): split, lower-case, strip special characters, drop empty.</summary>
    private static double PlainWordRepetition(string text, int n)
    {
        var words = new List<string>();
        foreach (string piece in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var runes = piece.ToLowerInvariant().EnumerateRunes().ToList();
            while (runes.Count > 0 && TextMeasures.IsSpecial(runes[0])) runes.RemoveAt(0);
            while (runes.Count > 0 && TextMeasures.IsSpecial(runes[^1])) runes.RemoveAt(runes.Count - 1);
            if (runes.Count > 0) words.Add(string.Concat(runes.Select(r => r.ToString())));
        }
        var grams = new List<string>();
        for (int i = 0; i + n <= words.Count; i++) grams.Add(string.Join(" ", words.Skip(i).Take(n)));
        if (grams.Count == 0) return 0;
        var frequency = grams.GroupBy(g => g).ToDictionary(g => g.Key, g => g.Count());
        return (double)frequency.Values.Where(f => f > 1).Sum() / grams.Count;
    }

    [Fact]
    public void SpecialAndAlphanumericRatios_CountCodePoints()
    {
        // "ab 1!": space, digit and '!' are special (data-juicer counts white space and digits), a and b are not.
        Assert.Equal(0.6, TextMeasures.SpecialCharacterRatio("ab 1!"), 12);
        // Letters and digits: a, b, 1 of 5.
        Assert.Equal(0.6, TextMeasures.AlphanumericRatio("ab 1!"), 12);
        // "你好😀": the emoji (one code point, two UTF-16 units) is special; Chinese letters are alphanumeric.
        Assert.Equal(1.0 / 3, TextMeasures.SpecialCharacterRatio("你好😀"), 12);
        Assert.Equal(2.0 / 3, TextMeasures.AlphanumericRatio("你好😀"), 12);
        Assert.Equal(3, TextMeasures.Length("你好😀"));
    }

    [Theory]
    [InlineData("<noinput>")]
    [InlineData("<no input>")]
    [InlineData("No input")]
    [InlineData("No input.")]
    [InlineData("noinput")]
    [InlineData("N/A")]
    [InlineData("none")]
    [InlineData("  None  ")]
    [InlineData("null")]
    [InlineData("无输入")]
    [InlineData("Not applicable.")]
    public void EmptyInputMarker_BecomesEmpty_OnlyInTheInputField(string marker)
    {
        var rule = new EmptyInputMarkerRule();
        Assert.Equal("", rule.Rewrite("input", marker));
        Assert.Null(rule.Rewrite("output", marker));
        Assert.Null(rule.Rewrite("input", "None of the above applies to Paris"));
    }

    private static string DemoLine(int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("llamafactory", "alpaca_en_demo.json")));
        // One line, as JSON Lines needs; Chinese and punctuation kept as UTF-8 rather than escaped.
        return JsonSerializer.Serialize(doc.RootElement[index], new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    [Fact]
    public void CleanCommand_RewritesOnlyAffectedStrings_RemovesWithReasonAndMeasuredValue()
    {
        string[] lines =
        [
            DemoLine(0),
            DemoLine(1),
            """{"instruction": "Say hello to the reader.", "input": "No input.", "output": "Hello there, friend."}""",
            """{"instruction": "Print\u0007 the \u001b[31mred\u001b[0m word.", "input": "", "output": "red"}""",
            """{"instruction": "\u3000Name a colour.\u00a0", "input": "", "output": "Blue. ", "id": 7}""",
            """{"instruction": "把这句话翻译成英文：我喜欢猫。", "input": "", "output": "I like cats."}""",
            """{"instruction": "Describe the image below.", "input": "", "output": "It shows a cat on a mat."}""",
            """{"instruction": "Summarise this article.", "input": "https://example.com/news/1", "output": "It is about news."}""",
            """{"instruction": "What is two plus two?", "input": "", "output": "N/A"}""",
            """{"instruction": "Hi", "input": "", "output": "Yo"}""",
            """{"instruction": "Repeat after me.", "input": "", "output": "la la la la la la la la la la la la la la la la la la la la la la la la la la la la la la"}""",
            """{"conversations": [{"from": "human", "value": "Please open the attached files and check them."}, {"from": "gpt", "value": "Sure, checking them now."}]}""",
        ];
        dir.Write("in.jsonl", string.Join("\n", lines) + "\n");
        string input = Path.Combine(dir.Path, "in.jsonl"), output = Path.Combine(dir.Path, "out.jsonl"), report = Path.Combine(dir.Path, "r.jsonl");

        var run = CliRunner.Run("data", "clean", input, "--out", output, "--report", report);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"clean: 12 records read, 6 written, 6 removed, 3 changed (empty_input_marker 1, control_characters 1, whitespace 2, "
            + $"unseeable_request 3, empty_output 1, text_length 1, character_repetition 1) -> {output}; report {report}", run.Stdout.Trim());
        string[] expected =
        [
            lines[0],
            lines[1],
            """{"instruction": "Say hello to the reader.", "input": "", "output": "Hello there, friend."}""",
            """{"instruction": "Print the red word.", "input": "", "output": "red"}""",
            """{"instruction": "Name a colour.", "input": "", "output": "Blue.", "id": 7}""",
            lines[5],
        ];
        Assert.Equal(string.Join("\n", expected) + "\n", File.ReadAllText(output));

        var entries = File.ReadAllLines(report).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([(2, "changed"), (3, "changed"), (4, "changed"), (6, "removed"), (7, "removed"), (8, "removed"), (9, "removed"), (10, "removed"), (11, "removed")],
            entries.Select(e => (e.GetProperty("record").GetInt32(), e.GetProperty("action").GetString())));
        Assert.Equal([("instruction", "whitespace"), ("output", "whitespace")],
            entries[2].GetProperty("changes").EnumerateArray().Select(c => (c.GetProperty("field").GetString(), c.GetProperty("rule").GetString())));
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(lines[4]).RootElement, entries[2].GetProperty("original")));
        // 0.8163: data-juicer's character_repetition formula run in Python on "Repeat after me.\n\nla la … la" (the record's text).
        Assert.Equal([("unseeable_request", "image"), ("unseeable_request", "https://example.com/news/1"), ("empty_output", "\"N/A\""),
                ("text_length", "6"), ("character_repetition", "0.8163"), ("unseeable_request", "files")],
            entries.Skip(3).Select(e => (e.GetProperty("reason").GetString(), e.GetProperty("measured").GetString())));
    }

    [Fact]
    public void CleanCommand_RecipeChoosesRulesAndParameters()
    {
        dir.Write("recipe.yaml", """
            fields: [instruction, output]
            rules:
              - unicode_normalization: {form: NFKC}
              - punctuation
              - text_length: {min: 1, max: 30}
              - blocked_keywords: {keywords: [lottery]}
            """);
        dir.Write("in.json", """
            [
              {"instruction": "ＡＢＣ，请读《书》、", "input": "ＡＢＣ", "output": "好的"},
              {"instruction": "Win the lottery now", "input": "", "output": "ok"},
              {"instruction": "This instruction is far too long to be kept here", "input": "", "output": "ok"}
            ]
            """);
        string input = Path.Combine(dir.Path, "in.json"), output = Path.Combine(dir.Path, "out.json");

        var run = CliRunner.Run("data", "clean", input, "--out", output, "--recipe", Path.Combine(dir.Path, "recipe.yaml"));

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("3 records read, 1 written, 2 removed, 1 changed (unicode_normalization 1, punctuation 1, blocked_keywords 1, text_length 1)", run.Stdout);
        // NFKC makes the full-width letters and comma ASCII; punctuation the 《》、 NFKC keeps; "input" is outside the recipe's fields and stays.
        Assert.Equal("[\n  {\"instruction\": \"ABC,请读\\\"书\\\",\", \"input\": \"ＡＢＣ\", \"output\": \"好的\"}\n]\n", File.ReadAllText(output));
    }

    [Theory]
    [InlineData("rules:\n  - no_such_rule\n", "unknown rule 'no_such_rule'")]
    [InlineData("rules:\n  - text_length: {minimum: 3}\n", "rule 'text_length' has no parameter 'minimum'")]
    [InlineData("rules:\n  - unicode_normalization: {form: NFD}\n", "unicode_normalization.form: expected one of NFC, NFKC")]
    [InlineData("rules:\n  - blocked_patterns: {patterns: ['(']}\n", "blocked_patterns: '(' is not a usable regular expression")]
    [InlineData("steps: []\n", "unknown recipe key 'steps'")]
    public void CleanCommand_RefusesABadRecipe_NamingTheRuleAndParameter(string recipe, string message)
    {
        dir.Write("recipe.yaml", recipe);
        dir.Write("in.jsonl", "{\"text\": \"some text here\"}\n");
        string output = Path.Combine(dir.Path, "out.jsonl");
        var run = CliRunner.Run("data", "clean", Path.Combine(dir.Path, "in.jsonl"), "--out", output, "--recipe", Path.Combine(dir.Path, "recipe.yaml"));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(message, run.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void CleanCommand_DryRunWritesNothing_AndNeverWritesOverTheInput()
    {
        dir.Write("in.jsonl", "{\"instruction\": \"Say hello to the reader.\", \"input\": \"<noinput>\", \"output\": \"Hello.\"}\n");
        string input = Path.Combine(dir.Path, "in.jsonl"), output = Path.Combine(dir.Path, "out.jsonl");
        var dry = CliRunner.Run("data", "clean", input, "--out", output, "--dry-run");
        Assert.Equal(0, dry.ExitCode);
        Assert.False(File.Exists(output));
        Assert.Equal("changed", JsonDocument.Parse(dry.Stdout).RootElement.GetProperty("action").GetString());
        Assert.Contains("clean: 1 records read, 1 written, 0 removed, 1 changed (empty_input_marker 1); dry run, nothing written", dry.Stderr);
        Assert.Contains("never modify their input", CliRunner.Run("data", "clean", input, "--out", input).Stderr);
    }
}
